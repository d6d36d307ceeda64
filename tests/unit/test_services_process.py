"""Rig servers never outlive hil: not when hil is SIGKILLed, not when the server clears its death signal."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hil.util.hostproc import die_with_parent
from hil.util.serverproc import ServerProcess

# A server as stubborn as dnsmasq, and more: it clears PR_SET_PDEATHSIG, ignores SIGTERM and SIGHUP (which
# dnsmasq takes as "reload") and leaves a child of its own behind. It logs the child's pid once it runs.
STUBBORN = """
import ctypes, signal, subprocess, time
ctypes.CDLL(None).prctl(1, 0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "600"])
print("child", child.pid, flush=True)
time.sleep(600)
"""

# hil itself, in a process the test can SIGKILL: it starts a server as the rig does (the stubborn one
# paused, if asked, as a test pauses an NTP server), writes what identifies it to `ready`, and waits.
HIL = """
import signal, sys, time
from pathlib import Path
ready = Path(sys.argv[2])
if sys.argv[1] == "dnsmasq":
    from hil.services.dns import DnsServer
    said = f"--port={DnsServer(ready.with_name('dns')).start().port}"
else:
    from hil.util.serverproc import ServerProcess
    server = ServerProcess("stubborn", [sys.executable, "-c", sys.argv[3]], ready.with_name("server.log"))
    server.start(lambda: "child" in server.log_file.read_text())
    said = f"{server.pid} {server.log_file.read_text().split()[1]}"
    if sys.argv[1] == "paused":
        server.signal(signal.SIGSTOP)
ready.with_suffix(".tmp").write_text(said)
ready.with_suffix(".tmp").replace(ready)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for a parent that never reaps counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _pids_with(arg: str) -> list[int]:
    """Live processes whose command line has `arg` as one of its words."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if arg.encode() in words and not _gone(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} (waited {timeout:.0f} s)")
        time.sleep(0.05)


def _kill(pids: list[int]) -> None:
    for pid in pids:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def hil(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Run hil with a server in a child process; gives what `HIL` wrote once the server is ready."""
    children: list[subprocess.Popen[bytes]] = []

    def run(*args: str) -> str:
        ready = tmp_path / "ready"
        with (tmp_path / "hil.err").open("wb") as err:
            child = subprocess.Popen(
                [sys.executable, "-c", HIL, args[0], str(ready), *args[1:]], cwd=Path(__file__).parents[2],
                stderr=err, preexec_fn=die_with_parent,
            )  # fmt: skip
        children.append(child)
        _wait_for(lambda: ready.exists() or child.poll() is not None, "the child hil started no server")
        assert child.poll() is None, (tmp_path / "hil.err").read_text()
        child.send_signal(signal.SIGKILL)  # hil gets no chance to stop anything
        child.wait()
        return ready.read_text()

    yield run
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize("state", ["stubborn", "paused"])
def test_a_server_that_clears_its_death_signal_dies_with_a_sigkilled_hil(
    hil: Callable[..., str], state: str
) -> None:
    pids = [int(pid) for pid in hil(state, STUBBORN).split()]
    try:
        _wait_for(lambda: all(_gone(pid) for pid in pids), "the server and its child outlived hil")
    finally:
        _kill(pids)


@pytest.mark.skipif(shutil.which("dnsmasq", path="/usr/sbin:/sbin:/usr/bin") is None, reason="no dnsmasq")
def test_the_rigs_dnsmasq_dies_with_a_sigkilled_hil(hil: Callable[..., str]) -> None:
    port = hil("dnsmasq")
    try:
        _wait_for(lambda: not _pids_with(port), f"dnsmasq {port} outlived hil")
    finally:
        _kill(_pids_with(port))


def test_signals_reach_the_server_itself_and_stop_kills_what_it_left(tmp_path: Path) -> None:
    server = ServerProcess("stubborn", [sys.executable, "-c", STUBBORN], tmp_path / "server.log")
    server.start(lambda: "child" in server.log_file.read_text())
    pid, child = server.pid, int(server.log_file.read_text().split()[1])
    assert pid is not None
    try:
        server.signal(signal.SIGSTOP)
        _wait_for(lambda: _state(pid) == "T", "the server was not paused")
        server.signal(signal.SIGCONT)
        _wait_for(lambda: _state(pid) != "T", "the server was not resumed")
        server.stop(grace=0.2)  # it ignores SIGTERM
        assert server.pid is None
        _wait_for(lambda: _gone(pid) and _gone(child), "the server or its child outlived stop()")
    finally:
        _kill([pid, child])
