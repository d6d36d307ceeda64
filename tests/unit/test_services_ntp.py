"""The rig's NTP server is a real chronyd: it serves the host's time, goes away and comes back on its port."""

from __future__ import annotations

import pytest

from hil.errors import HilError
from hil.services.ntp import NtpServer, ntp_query
from hil.util.hostproc import free_port


@pytest.fixture
def server() -> NtpServer:
    with NtpServer() as running:
        yield running


def test_serves_the_hosts_time_at_its_stratum(server: NtpServer) -> None:
    answer = server.query()
    assert answer.stratum == server.stratum
    assert abs(answer.offset) < 0.05  # the same host clock on both ends


def test_offline_closes_the_port_and_comes_back_on_the_same_one(server: NtpServer) -> None:
    port = server.port
    with server.offline(), pytest.raises(HilError, match=rf"NTP server 127.0.0.1:{port} did not answer"):
        server.query(timeout=0.3)
    assert server.port == port
    assert server.query().stratum == server.stratum


def test_stop_removes_its_private_directory() -> None:
    server = NtpServer().start()
    workdir = server.workdir
    server.stop()
    assert not workdir.exists()


def test_a_query_to_a_port_nobody_serves_is_an_error_naming_it() -> None:
    port = free_port()
    with pytest.raises(HilError, match=rf"127.0.0.1:{port} did not answer"):
        ntp_query("127.0.0.1", port, timeout=0.3)
