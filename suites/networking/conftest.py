"""The networking suite's DUT: flashed with the rig's DNS server in config.json, and leased before SSH.

The lease is awaited on the serial console before anything needs the network, so an image without a
working DHCP client fails every test with one diagnosis naming the missing lease, within the profile's
bound, instead of an SSH timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.dut import Dut
from hil.errors import HilError
from hil.services.dns import DnsServer
from hil.services.fixtures import RigNetwork
from hil.services.probes import ipv4_lease, run_on, wait_for, wired_interface


@pytest.fixture(scope="module")
def net_dut(_hil_dut: Dut, dut_image: Path, dns_server: DnsServer, rig_network: RigNetwork) -> Iterator[Dut]:
    """The DUT using the rig's DNS (where its OS takes config.json's dnsServers), booted, with a lease."""
    dut = _hil_dut
    config = {}
    if "config-dns" in dut.profile.features:
        config["dnsServers"] = rig_network.address(dns_server.port)
    try:
        dut.flash(dut_image, config)
        interface = wired_interface(dut, console=True)
        bound = dut.profile.bound("dhcp_lease")
        lease, _ = wait_for(lambda: ipv4_lease(dut, interface, console=True), bound)
        if lease is None:
            clients = run_on(dut, "ps | grep -i -e dhc[p] -e udhc[p] -e networ[k]", console=True).strip()
            pytest.fail(
                f"no DHCP lease: {interface} has no IPv4 address {bound:.0f} s after boot on "
                f"{rig_network.mode} networking; DHCP client processes: {clients or 'none'}",
                pytrace=False,
            )
        dut.boot()
    except HilError as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}", pytrace=False)
    yield dut
    dut.flash(dut_image)  # later suites get the image as the plugin flashed it
