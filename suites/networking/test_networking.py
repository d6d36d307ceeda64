"""Networking suite: the DUT takes the network the rig gives it: a DHCP lease and default route, the rig's
DNS (a fresh name resolves, an unknown one fails at once), SSH in and HTTP out with a checked download, a
cable pulled and plugged back, and its config.json hostname announced to DHCP.

On the QEMU rig the network is QEMU's user networking: the rig's servers listen on the host's loopback and
the DUT reaches them at 10.0.2.2 (see hil.services).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import shlex
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.capabilities import LinkControl, NetworkCapture
from hil.dut import Dut
from hil.lab.rig import Rig
from hil.probes.pcap import dhcp_messages
from hil.probes.queries import carrier, default_route, ipv4_lease, run_on, wait_for, wired_interface
from hil.pytestplugin.servers import RigNetwork
from hil.services.dns import DnsServer
from hil.services.http import HttpServer

DOWNLOAD_BYTES = 4 << 20


def _resolve(dut: Dut, name: str) -> tuple[bool, list[str], str]:
    """(resolved, IPv4 addresses, output) from the DUT's system resolver, bounded by the profile."""
    bound = dut.profile.bounds.dns_answer
    command = dut.profile.network.resolve.render(name=name)
    # busybox and coreutils both have timeout: a resolver that hangs fails this test, not the DUT link.
    out = dut.run(f"timeout {bound:.0f} sh -c {shlex.quote(command)}", timeout=bound + 30)
    addresses = [line.strip() for line in out.output.splitlines() if line.strip()]
    return out.ok, addresses, out.output


def test_gets_an_ipv4_lease_and_a_default_route(net_dut: Dut, rig_network: RigNetwork) -> None:
    interface = wired_interface(net_dut)
    lease = ipv4_lease(net_dut, interface)
    assert lease is not None, f"{interface} has no IPv4 address"
    assert lease.ip in rig_network.subnet, f"{interface}: {lease} is not in {rig_network.subnet}"
    assert default_route(net_dut) == (rig_network.gateway, interface)


@pytest.mark.requires_os("rig-dns")
def test_resolves_a_fresh_name_the_rigs_dns_serves(net_dut: Dut, dns_server: DnsServer) -> None:
    name = dns_server.unique_name()
    address = str(ipaddress.IPv4Address("192.0.2.0") + secrets.randbelow(250) + 1)  # TEST-NET-1
    dns_server.add(name, address)
    ok, addresses, output = _resolve(net_dut, name)
    assert ok and addresses == [address], f"{name} should resolve to {address}; the DUT said:\n{output}"


@pytest.mark.requires_os("rig-dns")
def test_fails_cleanly_on_a_name_the_rigs_dns_does_not_serve(net_dut: Dut, dns_server: DnsServer) -> None:
    name = dns_server.unique_name("unknown")
    ok, addresses, output = _resolve(net_dut, name)
    assert not ok and not addresses, f"{name} is not served, yet the DUT resolved it:\n{output}"
    assert dns_server.query(name) == []  # the rig's server really says NXDOMAIN


def test_host_reaches_the_dut_over_ssh(net_dut: Dut) -> None:
    token = secrets.token_hex(8)
    assert net_dut.run(f"echo {token}").check().output.strip() == token


def test_dut_downloads_a_file_from_the_rig_intact(
    net_dut: Dut, http_server: HttpServer, rig_network: RigNetwork, record_property
) -> None:
    name = f"blob-{secrets.token_hex(4)}"
    data = os.urandom(DOWNLOAD_BYTES)
    (http_server.root / name).write_bytes(data)
    dest = f"/tmp/{name}"
    download = net_dut.profile.network.download.render(
        url=http_server.url(name, host=rig_network.host), dest=dest
    )
    try:
        # Timed on the DUT (its uptime, 10 ms steps): the server finishes writing while megabytes still sit
        # in socket buffers, and SSH round trips would count on the host.
        timed = net_dut.run(
            f"a=$(cut -d' ' -f1 /proc/uptime) && {download} && echo $a $(cut -d' ' -f1 /proc/uptime)"
        )
        start, end = map(float, timed.check().output.split()[-2:])
        digest = net_dut.run(f"sha256sum {dest}").check().output.split()[0]
    finally:
        net_dut.run(f"rm -f {dest}")
        (http_server.root / name).unlink()
    assert digest == hashlib.sha256(data).hexdigest()
    assert [t.size for t in http_server.transfers if t.path == f"/{name}"] == [DOWNLOAD_BYTES]
    record_property("hil.download_bytes", str(DOWNLOAD_BYTES))
    record_property("hil.download_mbit_per_s", f"{DOWNLOAD_BYTES * 8 / 1e6 / max(end - start, 0.01):.1f}")


@pytest.mark.requires("link-control")
def test_notices_a_pulled_cable_and_is_back_within_the_bound(
    net_dut: Dut, http_server: HttpServer, rig_network: RigNetwork, record_property
) -> None:
    set_link = net_dut.require(LinkControl).set_link
    interface = wired_interface(net_dut)
    (http_server.root / "ping").write_text("pong\n")
    url = http_server.url("ping", host=rig_network.host)
    probe = net_dut.profile.network.download.render(url=url, dest="-")
    notice, recovery = net_dut.profile.bounds.link_notice, net_dut.profile.bounds.link_recovery
    set_link(False)
    try:
        down, _ = wait_for(lambda: carrier(net_dut, interface) == "0", notice, interval=0.5)
        assert down, f"the DUT still sees a carrier on {interface} {notice:.0f} s after the cable was pulled"
    finally:
        set_link(True)
        plugged = time.monotonic()
    up, _ = wait_for(lambda: carrier(net_dut, interface) == "1", notice, interval=0.5)
    assert up, f"no carrier on {interface} {notice:.0f} s after the cable was plugged back"

    def reaches_the_rig() -> bool:
        return "pong" in run_on(net_dut, f"timeout 5 {probe}", console=net_dut.profile.login is not None)

    back, _ = wait_for(reaches_the_rig, max(0.0, recovery - (time.monotonic() - plugged)))
    assert back, f"the DUT cannot reach the rig {recovery:.0f} s after its cable was plugged back"
    record_property("hil.link_recovery_seconds", f"{time.monotonic() - plugged:.2f}")
    net_dut.run("true").check()  # and SSH still works


@pytest.mark.requires("network-capture")
@pytest.mark.requires_os("dhcp-renew")
def test_announces_its_hostname_to_dhcp(net_dut: Dut, tmp_path: Path) -> None:
    capture = net_dut.require(NetworkCapture).capture_network
    hostname = net_dut.run(net_dut.profile.identity.hostname_command).check().output.strip()
    interface = wired_interface(net_dut)
    bound = net_dut.profile.bounds.dhcp_lease
    with capture(tmp_path / "dhcp.pcap") as pcap:
        net_dut.run(net_dut.profile.network.dhcp_renew.render(interface=interface)).check()
        requests, _ = wait_for(
            lambda: [m for m in dhcp_messages(pcap) if m.kind in ("DISCOVER", "REQUEST")], bound, interval=0.5
        )
    assert requests, f"no DHCP request from the DUT within {bound:.0f} s of asking it to renew its lease"
    assert {m.hostname for m in requests} == {hostname}


@pytest.mark.requires("wifi")
def test_joins_the_rigs_wifi_access_point(reflash_dut: Callable[..., Dut], rig: Rig, tmp_path: Path) -> None:
    from hil.drivers.wifi_ap import WifiAccessPoint

    wifi = rig.spec.network.wifi  # present: requires("wifi") skipped rigs without it
    ap = WifiAccessPoint(wifi, tmp_path)
    ap.start()
    try:
        dut = reflash_dut(ap.dut_config())  # the PSK is a SecretStr: only the AP hands it out
        bound = dut.profile.bounds.dhcp_lease
        lease, _ = wait_for(lambda: ipv4_lease(dut, "wlan0"), bound)
        assert lease is not None, f"the DUT did not join {wifi.ssid} and get a lease within {bound:.0f} s"
    finally:
        ap.stop()
