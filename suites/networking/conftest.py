"""The networking suite's DUT: pointed at the rig's DNS server the way its OS takes one, and leased.

The lease is awaited before anything needs the network (on the serial console where hil can log in
there), so an image without a working DHCP client fails every test with one diagnosis naming the
missing lease, within the profile's bound, instead of an SSH timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hil.dut.dut import Dut, State
from hil.probes.queries import ipv4_lease, run_on, wait_for, wired_interface
from hil.probes.rig_servers import rig_server_applied, rig_server_config
from hil.pytestplugin.servers import RigNetwork
from hil.services.dns import DnsServer


@pytest.fixture(scope="module")
def net_dut(
    hil_dut: Dut, reflash_dut: Callable[..., Dut], dns_server: DnsServer, rig_network: RigNetwork
) -> Iterator[Dut]:
    """The DUT using the rig's DNS (where its OS lets hil point it there), booted, with a lease."""
    address = rig_network.address(dns_server.port)
    profile = hil_dut.profile
    dns = profile.network.rig_dns
    # Over the console where hil can log in there: the network is what is in question.
    console = profile.login is not None
    dut = reflash_dut(rig_server_config(dns, "dns", address), boot=False)
    dut.transition(State.BOOTED if console else State.READY)
    interface = wired_interface(dut, console=console)
    bound = profile.bounds.dhcp_lease
    lease, _ = wait_for(lambda: ipv4_lease(dut, interface, console=console), bound)
    if lease is None:
        clients = run_on(dut, "ps | grep -i -e dhc[p] -e udhc[p] -e networ[k]", console=console).strip()
        pytest.fail(
            f"no DHCP lease: {interface} has no IPv4 address {bound:.0f} s after boot on "
            f"{rig_network.mode} networking; DHCP client processes: {clients or 'none'}",
            pytrace=False,
        )
    dut.boot()
    with rig_server_applied(dut, dns, address):
        yield dut
