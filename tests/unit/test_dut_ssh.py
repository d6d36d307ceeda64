"""hil's SSH session with a DUT, against a fake SSH server on 127.0.0.1 (paramiko's ServerInterface, a
throwaway host key): connecting with hil's key, running commands and copying files, the host key pinned
until a reflash, a dropped link said in one line, reconnecting, and what the console says when SSH fails.
Then the same through `Dut` on the fake board, which serves SSH when asked."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from hil.console.engine import Console
from hil.console.unix_socket import UnixSocketTransport
from hil.dut import Dut
from hil.dut.machine import State
from hil.dut.ssh_session import SshSession
from hil.errors import SshError
from hil.lab.rig import Timeouts, load_rig
from hil.os import get_profile
from hil.os.model import OsProfile
from tests.support.disk_images import make_disk
from tests.support.fakes.board import FakeBoard
from tests.support.fakes.console_dut import FakeDut
from tests.support.fakes.ssh_server import FakeSshServer

TIMEOUTS = Timeouts(ssh=10, command=10)


@dataclass
class Endpoint:
    """Where the session connects: a port that a test can point at another server."""

    ssh_port: int
    ssh_host: str = "127.0.0.1"


@pytest.fixture
def servers() -> Iterator[list[FakeSshServer]]:
    started: list[FakeSshServer] = []
    yield started
    for server in started:
        server.stop()


def _serve(
    servers: list[FakeSshServer], session: SshSession, host_key: paramiko.PKey | None = None
) -> FakeSshServer:
    """A fake DUT's SSH server that lets `session` in (with a host key of its own unless given one)."""
    server = FakeSshServer([session.public_key], host_key=host_key)
    servers.append(server)
    return server


def _session(profile: OsProfile | None = None, timeouts: Timeouts = TIMEOUTS) -> SshSession:
    return SshSession("fake", profile or get_profile("reference"), Endpoint(9), timeouts)


def test_a_session_connects_with_hils_key_runs_commands_and_copies_files(
    servers: list[FakeSshServer], tmp_path: Path
) -> None:
    session = _session()
    server = _serve(servers, session)
    session.endpoint = Endpoint(server.port)
    session.connect(None)
    result = session.run("echo hello DUT")
    assert (result.output, result.exit_code) == ("hello DUT\n", 0)
    assert not session.run("exit 3").ok
    local = tmp_path / "bundle"
    local.write_bytes(b"\x00\x01" * 100_000)
    session.put(local, "/mnt/data/bundle")
    session.get("/mnt/data/bundle", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == local.read_bytes()
    assert server.commands[:2] == ["echo hello DUT", "exit 3"]


def test_a_key_the_dut_does_not_accept_is_refused_within_the_ssh_bound(servers: list[FakeSshServer]) -> None:
    session = _session(timeouts=Timeouts(ssh=1, command=10))
    stranger = _session()
    server = _serve(servers, stranger)
    session.endpoint = Endpoint(server.port)
    start = time.monotonic()
    with pytest.raises(SshError) as refused:
        session.connect(None)
    assert time.monotonic() - start < 5
    message = str(refused.value)
    assert len(message.splitlines()) == 1
    assert f"no SSH session with root@127.0.0.1:{server.port} before the deadline" in message
    assert "Authentication failed" in message


def test_the_first_host_key_is_pinned_and_another_is_refused_until_a_reflash(
    servers: list[FakeSshServer],
) -> None:
    session = _session()
    first = _serve(servers, session)
    session.endpoint = Endpoint(first.port)
    session.connect(None)
    assert session.host_key == first.host_key
    session.close()
    other = _serve(servers, session)  # another machine, with host keys of its own, on the DUT's port
    session.endpoint = Endpoint(other.port)
    with pytest.raises(SshError, match=r"host key of \[127.0.0.1\]:\d+ changed from .* without a reflash"):
        session.connect(None)
    session.forget_host()  # what a reflash does
    session.connect(None)
    assert session.host_key == other.host_key


def test_a_restored_dut_is_trusted_only_with_the_host_key_its_snapshot_was_saved_with(
    servers: list[FakeSshServer],
) -> None:
    session = _session()
    saved = _serve(servers, session)
    session.trust_host(saved.host_key)
    stranger = _serve(servers, session)
    session.endpoint = Endpoint(stranger.port)
    with pytest.raises(SshError, match=r"changed .* without a reflash"):
        session.connect(None)
    session.endpoint = Endpoint(_serve(servers, session, host_key=saved.host_key).port)
    session.connect(None)
    assert session.run("true").ok


def test_a_link_dropped_under_a_command_is_one_line_naming_it_and_the_session_reconnects(
    servers: list[FakeSshServer],
) -> None:
    session = _session()
    server = _serve(servers, session)
    session.endpoint = Endpoint(server.port)
    session.connect(None)
    threading.Timer(0.3, server.drop).start()
    start = time.monotonic()
    with pytest.raises(SshError) as dropped:
        session.run("sleep 5")
    assert time.monotonic() - start < 4
    message = str(dropped.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"SSH link to root@127.0.0.1:{server.port} dropped during `sleep 5`")
    session.connect(None)  # after a reboot or a restore: a new session, the same pinned host key
    assert session.run("echo back").output == "back\n"


def test_an_os_hil_cannot_put_its_key_on_says_how_to_let_it_in() -> None:
    session = _session(get_profile("generic"))  # no console login, no key file: no way to add hil's key
    with pytest.raises(SshError, match="OS profile 'generic' gives hil no way in"):
        session.connect(None)


def test_a_refused_session_says_what_the_console_shows_of_the_ssh_server(tmp_path: Path) -> None:
    rig = tmp_path / "fake.yaml"
    rig.write_text(
        "kind: qemu\ndevice_type: qemux86-64\n"
        "os:\n  extends: reference\n  services:\n    check: test -n {{name}}\n"
    )
    session = _session(load_rig(rig).profile, Timeouts(ssh=1, command=10))  # port 9: nothing answers
    fake = FakeDut(tmp_path / "console.sock", logged_in=True)
    console = Console(UnixSocketTransport(fake.path, 5), tmp_path / "console.log", name="fake")
    try:
        console.login("root", None, timeout=10)
        with pytest.raises(SshError) as refused:
            session.connect(console)
    finally:
        console.close()
        fake.stop()
    message = str(refused.value)
    assert len(message.splitlines()) == 1
    assert message.endswith("; the console shows the SSH server 'dropbear' running")


# --- the same through the Dut, on the fake board serving SSH ------------------------------------------


def _reference_os(command: str) -> tuple[str, int] | None:
    return ("1.0.0\n", 0) if "VERSION_ID" in command else None


@pytest.fixture
def dut(tmp_path: Path) -> Iterator[Dut]:
    rig = tmp_path / "fake.yaml"
    rig.write_text(
        "kind: qemu\ndevice_type: qemux86-64\nos: reference\n"
        "timeouts:\n  boot: 20\n  ssh: 10\n  command: 10\n  shutdown: 1\n"
    )
    board = FakeBoard(tmp_path / "board", password="", ssh=True, answer=_reference_os)
    dut = Dut(load_rig(rig), board, tmp_path / "art")
    yield dut
    dut.close()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    manifest = json.dumps({"slug": "qemux86-64", "version": "1.0.0"}).encode()
    return make_disk(tmp_path / "os.img", boot_files={"device-type.json": manifest})


def test_a_dut_whose_board_serves_ssh_is_ready_with_the_key_config_json_carried(
    dut: Dut, image: Path, tmp_path: Path
) -> None:
    dut.flash(image)
    dut.boot()
    assert dut.state == State.READY and dut.os_version == "1.0.0"
    assert dut.config["os"]["sshKeys"] == [dut.public_key]
    assert dut.run("echo over ssh").output == "over ssh\n"
    (tmp_path / "f").write_text("payload")
    dut.put(tmp_path / "f", "/tmp/f")
    dut.get("/tmp/f", tmp_path / "g")
    assert (tmp_path / "g").read_text() == "payload"
    assert dut.console_run("echo on the console").output.strip() == "on the console"


def test_a_power_cycle_reconnects_to_the_pinned_host_key_and_a_reflash_trusts_a_new_one(
    dut: Dut, image: Path
) -> None:
    board = dut.board
    assert isinstance(board, FakeBoard)
    dut.flash(image)
    dut.boot()
    first = dut.ssh.host_key
    dut.power_cycle(0)
    assert dut.state == State.READY and dut.ssh.host_key == first
    dut.flash(image)  # a reflashed DUT makes new host keys
    dut.boot()
    assert dut.ssh.host_key == board.host_key and dut.ssh.host_key != first
