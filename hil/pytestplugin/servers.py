"""pytest fixtures for the rig-side services; loaded with hil's pytest plugin wherever hil is installed.

Servers are session-scoped: one NTP, DNS, HTTP and HTTPS server per run, each on its own free port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from hil.drivers.capabilities import HostedNetwork
from hil.dut.boards import rig_has
from hil.errors import HilError
from hil.lab.rig import Rig
from hil.services.dns import DnsServer
from hil.services.http import HttpServer
from hil.services.ntp import NtpServer
from hil.services.tls import ServerIdentity, make_server_identity
from hil.util.hostproc import free_port


@dataclass(frozen=True)
class RigNetwork:
    """The network the rig gives its DUT, as the DUT sees it."""

    mode: str
    host: str  # the rig's host: where the DUT reaches servers on the host's 127.0.0.1
    subnet: ipaddress.IPv4Network  # where the DUT's lease comes from
    gateway: str

    def address(self, port: int) -> str:
        """`host:port` of a rig-side server, as the DUT reaches it."""
        return f"{self.host}:{port}"

    def unreachable(self) -> str:
        """`host:port` where nothing listens (a time or name server that is down)."""
        return self.address(free_port())


# QEMU user networking (slirp): its DHCP leases 10.0.2.15 and up, the host's loopback is 10.0.2.2.
SLIRP = RigNetwork("qemu-user", "10.0.2.2", ipaddress.IPv4Network("10.0.2.0/24"), "10.0.2.2")


@pytest.fixture(scope="session")
def rig_network(rig: Rig) -> RigNetwork:
    """The rig's network, for rigs whose network hil runs end to end (its board has a hosted network)."""

    if rig_has(rig, HostedNetwork):
        return SLIRP
    pytest.skip(f"rig {rig.name} ({rig.kind}) is on a lab network hil does not run; no rig-side servers")


Server = TypeVar("Server", NtpServer, DnsServer, HttpServer)


def _started(server: Server) -> Server:
    try:
        return server.start()
    except HilError as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def ntp_server(rig_network: RigNetwork, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NtpServer]:
    """chronyd serving the host's time; the DUT reaches it at rig_network.address(ntp_server.port)."""
    server = _started(NtpServer(tmp_path_factory.mktemp("ntp")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dns_server(rig_network: RigNetwork, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsServer]:
    """dnsmasq answering the names tests add (under hil.test), NXDOMAIN for the rest."""
    server = _started(DnsServer(tmp_path_factory.mktemp("dns")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def http_server(rig_network: RigNetwork, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """Plain HTTP serving a directory tests put files in (`http_server.root`)."""
    server = _started(HttpServer(tmp_path_factory.mktemp("www")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_identity(rig_network: RigNetwork) -> ServerIdentity:
    """A throwaway CA and a certificate for the rig's host as the DUT and the host address it."""
    return make_server_identity([rig_network.host, "127.0.0.1"])


@pytest.fixture(scope="session")
def https_server(
    server_identity: ServerIdentity, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HttpServer]:
    """HTTPS with the throwaway CA: every answer carries a Date header (an HTTPS time source)."""
    root: Path = tmp_path_factory.mktemp("https")
    server = _started(HttpServer(root, server_identity))
    yield server
    server.stop()
