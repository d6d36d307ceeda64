"""The rig's DNS server is a real dnsmasq: names tests add resolve, every other test name is NXDOMAIN."""

from __future__ import annotations

import pytest

from hil.errors import HilError
from hil.services.dns import DOMAIN, DnsServer


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
