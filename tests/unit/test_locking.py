"""Rig leases: one holder at a time, a clear error naming the holder, no stale lock after a kill, and a
lease of several pieces of hardware taken whole or not at all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hil.errors import LeaseError
from hil.lab.locking import Lease, holder

HOLD = """
import sys, time
from pathlib import Path
from hil.lab.locking import Lease
Lease(sys.argv[1], Path(sys.argv[2]), keys=sys.argv[3:]).acquire()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def child_holder(tmp_path: Path):
    """A separate process holding the lease of rig `bench-1`."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, "bench-1", str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    yield child
    child.kill()
    child.wait(timeout=10)


def test_a_free_rig_is_leased_and_released(tmp_path: Path) -> None:
    with Lease("bench-1", tmp_path) as lease:
        assert lease.held
        found = holder("bench-1", tmp_path)
        assert found is not None and (found.host, found.pid) == (socket.gethostname(), os.getpid())
    assert holder("bench-1", tmp_path) is None


def test_a_second_holder_is_told_who_holds_the_rig(tmp_path: Path, child_holder: subprocess.Popen) -> None:
    with pytest.raises(
        LeaseError, match=rf"rig bench-1 is leased by {socket.gethostname()}:{child_holder.pid} since "
    ):
        Lease("bench-1", tmp_path).acquire()


def test_a_second_lease_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    with Lease("bench-1", tmp_path), pytest.raises(LeaseError, match="is leased by"):
        Lease("bench-1", tmp_path).acquire()


def test_a_waiting_holder_gives_up_after_its_wait(tmp_path: Path, child_holder: subprocess.Popen) -> None:
    with pytest.raises(LeaseError, match="is leased by"):
        Lease("bench-1", tmp_path).acquire(wait=0.3)


def test_a_waiting_holder_gets_the_rig_when_the_holder_goes(
    tmp_path: Path, child_holder: subprocess.Popen
) -> None:
    threading.Timer(0.3, child_holder.terminate).start()
    with Lease("bench-1", tmp_path).acquire(wait=30) as lease:
        assert lease.held


def test_a_holder_killed_with_sigkill_leaves_the_rig_free(
    tmp_path: Path, child_holder: subprocess.Popen
) -> None:
    found = holder("bench-1", tmp_path)
    assert found is not None and found.pid == child_holder.pid
    os.kill(child_holder.pid, signal.SIGKILL)
    child_holder.wait(timeout=10)
    assert holder("bench-1", tmp_path) is None
    with Lease("bench-1", tmp_path) as lease:
        assert lease.held


def test_other_rigs_are_independent(tmp_path: Path, child_holder: subprocess.Popen) -> None:
    with Lease("bench-2", tmp_path) as lease:
        assert lease.held


def test_a_lease_of_shared_hardware_names_the_other_rig_and_keeps_nothing(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, "bench-a", str(tmp_path), "card-usb-05e3-0751-x", "console-ttyusb0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(LeaseError) as info:
            Lease("bench-b", tmp_path, keys=["card-usb-1234-5678-y", "console-ttyusb0"]).acquire()
        assert str(info.value).startswith(
            f"rig bench-b is leased by {socket.gethostname()}:{child.pid} since "
        )
        assert str(info.value).endswith("(as bench-a: the same console-ttyusb0)")
        assert holder("card-usb-1234-5678-y", tmp_path) is None  # the free card was not kept locked
        found = Lease("bench-b", tmp_path, keys=["card-usb-1234-5678-y", "console-ttyusb0"]).holder()
        assert found is not None and (found.pid, found.lease) == (child.pid, "bench-a")
    finally:
        child.kill()
        child.wait(timeout=10)
    with Lease("bench-b", tmp_path, keys=["card-usb-1234-5678-y", "console-ttyusb0"]) as lease:
        assert lease.held and holder("console-ttyusb0", tmp_path).lease == "bench-b"  # type: ignore[union-attr]
