"""The rig's DNS server is a real dnsmasq: names tests add resolve, every other test name is NXDOMAIN."""

from __future__ import annotations

import contextlib
import getpass
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.errors import HilError
from hil.os import get_profile
from hil.probes.rig_servers import rig_server_config
from hil.services.dns import DOMAIN, DnsServer, dns_query
from hil.util.hostproc import free_port, tool
from hil.util.serverproc import ServerProcess


@pytest.fixture
def server() -> DnsServer:
    with DnsServer() as running:
        yield running


def test_a_name_added_resolves_at_once(server: DnsServer) -> None:
    name = server.unique_name()
    server.add(name, "192.0.2.10")
    assert server.query(name) == ["192.0.2.10"]


def test_names_it_was_not_given_are_nxdomain_not_forwarded(server: DnsServer) -> None:
    server.add(server.unique_name(), "192.0.2.11")
    assert server.query(server.unique_name("unknown")) == []


def test_unique_names_never_repeat_and_stay_under_the_test_domain(server: DnsServer) -> None:
    names = {server.unique_name() for _ in range(100)}
    assert len(names) == 100
    assert all(name.endswith(f".{DOMAIN}") for name in names)


def test_refuses_a_name_outside_its_domain(server: DnsServer) -> None:
    with pytest.raises(HilError, match=r"names under hil.test only"):
        server.add("example.com", "192.0.2.12")


def test_a_resolver_that_also_forwards_elsewhere_asks_only_the_rig_for_its_domain(tmp_path: Path) -> None:
    """balenaOS's dnsmasq forwards to config.json's dnsServers and to the servers DHCP named; QEMU's own
    resolver answers every name. The balenaos profile routes the rig's domain alone to the rig's server,
    so the rig's answer (and its NXDOMAIN) is the only one a DUT can get for it."""
    value = rig_server_config(get_profile("balenaos").network.rig_dns, "dns", "127.0.0.1:{port}")
    with DnsServer() as rig, DnsServer() as qemu_resolver:
        name, unknown = rig.unique_name(), rig.unique_name("unknown")
        rig.add(name, "10.0.2.77")
        qemu_resolver.add(name, "10.9.9.9")
        qemu_resolver.add(unknown, "10.9.9.9")
        server = value["dnsServers"].replace("{port}", str(rig.port))
        with _resolver(tmp_path, [f"127.0.0.1#{qemu_resolver.port}", server]) as port:
            for _ in range(5):  # each time, whichever upstream answers first would win a race
                assert dns_query("127.0.0.1", port, name) == ["10.0.2.77"]
                assert dns_query("127.0.0.1", port, unknown) == []


@contextlib.contextmanager
def _resolver(tmp_path: Path, servers: list[str]) -> Iterator[int]:
    """A dnsmasq as balenaOS runs it: forwarding to every server given, asking them all at once."""
    port = free_port(socket.SOCK_DGRAM)
    command = [tool("dnsmasq", "dnsmasq-base"), "--keep-in-foreground", "--conf-file=/dev/null",
               f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
               "--no-hosts", "--all-servers", "--no-negcache", "--pid-file", f"--user={getpass.getuser()}",
               *(f"--server={s}" for s in servers)]  # fmt: skip
    process = ServerProcess("DUT resolver", command, tmp_path / "resolver.out")
    process.start(lambda: _answers(port))
    try:
        yield port
    finally:
        process.stop()


def _answers(port: int) -> bool:
    with contextlib.suppress(HilError):
        dns_query("127.0.0.1", port, f"ready.{DOMAIN}", timeout=0.2)
        return True
    return False
