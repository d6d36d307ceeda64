"""Leases are the hardware's, not the file's, and `hil rig hold` keeps one across commands: the commands
inside use the rig without leasing it again, one at a time; nobody else gets it; a killed hold frees it and
stops them."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.commands.main import main
from hil.errors import LeaseError
from hil.lab.locking import HELD_ENV
from hil.lab.pool import hardware_keys, lease_rig
from hil.lab.rig import load_rig

ROOT = Path(__file__).resolve().parents[2]
LAB_YAML = (ROOT / "rigs" / "lab-rpi4-01.yaml").read_text()

# Inside a hold: lease the rig as any hil command does, and say what was got.
ADOPT = """
import os
from hil.lab.pool import lease_rig
rig, lease = lease_rig("vm")
print(rig.name, lease.rig_name, lease.held, os.environ["HIL_HELD_LEASE"], flush=True)
"""

# Inside a hold: use the rig, and have a second command try to use it at the same time.
TWO_AT_ONCE = (
    ADOPT
    + """
import subprocess, sys
second = subprocess.run([sys.executable, "-c", "from hil.lab.pool import lease_rig; lease_rig('vm')"],
                        capture_output=True, text=True)
print(second.returncode, second.stderr.strip().splitlines()[-1], flush=True)
"""
)

# Inside a hold: use the rig until stopped.
USE_UNTIL_STOPPED = (
    ADOPT
    + """
import time
try:  # the pid is printed inside: the test stops the hold once it has read it
    print("pid", os.getpid(), flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    print("stopped", flush=True)
"""
)


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private rigs and cache; a one-board virtual rig `vm`."""
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    (rigs / "vm.yaml").write_text("kind: qemu\ndevice_type: qemux86-64\ninstances: 1\n")
    monkeypatch.setenv("HIL_RIGS_DIR", str(rigs))
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(HELD_ENV, raising=False)
    return rigs


@pytest.fixture
def hold(lab: Path) -> Iterator:
    """Start `hil rig hold RIG -- COMMAND...` in the background; stopped at the end of the test."""
    started: list[subprocess.Popen[str]] = []

    def start(rig: str, *command: str) -> subprocess.Popen[str]:
        child = subprocess.Popen([sys.executable, "-m", "hil", "-q", "rig", "hold", rig, "--", *command],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, cwd=ROOT)  # fmt: skip
        started.append(child)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(line.strip()) for line in child.stdout or ()], daemon=True
        ).start()
        child.lines = lines  # type: ignore[attr-defined]
        return child

    yield start
    for child in started:
        child.kill()
        child.wait(timeout=10)


def _line(child: subprocess.Popen[str], timeout: float = 30) -> str:
    """The next line the hold's command printed (its stdout, read as it comes)."""
    try:
        return child.lines.get(timeout=timeout)  # type: ignore[attr-defined]
    except queue.Empty:
        raise AssertionError(f"no output within {timeout} s") from None


def _bench(rigs: Path, name: str, old: str = "", new: str = "") -> None:
    (rigs / f"{name}.yaml").write_text(LAB_YAML.replace(old, new) if old else LAB_YAML)


def test_two_rig_files_naming_one_card_reader_are_never_leased_at_once(lab: Path, hold) -> None:
    _bench(lab, "bench-a")
    _bench(lab, "bench-b", "usb-FTDI_TTL232R-3V3_FT0001", "usb-FTDI_TTL232R-3V3_FT0002")  # another console
    holding = hold("bench-a", "sh", "-c", "echo ready; exec sleep 60")
    assert _line(holding) == "ready"
    with pytest.raises(LeaseError) as info:
        lease_rig("bench-b")
    who = f"{socket.gethostname()}:{holding.pid}"
    assert str(info.value).startswith(
        f"bench-b: no free rig after waiting 0 s: bench-b is leased by {who} since "
    )
    assert str(info.value).endswith("(as bench-a: the same card-usb-05e3-0751-000000001206)")


def test_two_rig_files_naming_one_console_are_never_leased_at_once(lab: Path, hold) -> None:
    _bench(lab, "bench-a")
    _bench(lab, "bench-b", 'serial: "000000001206"', 'serial: "000000009999"')  # another card reader
    holding = hold("bench-a", "sh", "-c", "echo ready; exec sleep 60")
    assert _line(holding) == "ready"
    with pytest.raises(LeaseError, match=r"\(as bench-a: the same console-serial_by-id_usb-FTDI_TTL232R"):
        lease_rig("bench-b")


def test_rig_list_shows_which_file_holds_shared_hardware(lab: Path, hold, capsys) -> None:
    _bench(lab, "bench-a")
    _bench(lab, "bench-b")
    holding = hold("bench-a", "sh", "-c", "echo ready; exec sleep 60")
    assert _line(holding) == "ready"
    assert main(["rig", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert f"bench-a: {socket.gethostname()}:{holding.pid} since " in rows["bench-a"]
    assert f"bench-b: {socket.gethostname()}:{holding.pid} since " in rows["bench-b"]
    assert rows["bench-b"].split(" since ")[1].split()[1:3] == ["as", "bench-a"]
    assert rows["vm"].split()[3] == "-"


def test_a_twin_is_leased_by_its_card_and_a_virtual_rig_by_its_instances() -> None:
    assert hardware_keys(load_rig("twin-x86_64")) == ("card-usb-0bda-0109-hil-twin-0001",)
    assert hardware_keys(load_rig("qemu-x86_64")) == ()


def test_commands_inside_a_hold_use_its_lease(lab: Path, hold) -> None:
    holding = hold("vm", sys.executable, "-c", ADOPT)
    assert _line(holding) == "vm vm True vm"
    assert holding.wait(timeout=30) == 0
    _rig, lease = lease_rig("vm")  # freed with the hold
    lease.release()


def test_nobody_else_gets_a_held_rig_and_it_is_free_when_the_shell_exits(lab: Path, hold, capsys) -> None:
    holding = hold("vm", "sh", "-c", "echo ready; read line")
    assert _line(holding) == "ready"
    with pytest.raises(LeaseError, match=rf"vm is leased by {socket.gethostname()}:{holding.pid} since "):
        lease_rig("vm")
    assert main(["rig", "list"]) == 0
    assert f"vm: {socket.gethostname()}:{holding.pid} since " in capsys.readouterr().out
    holding.communicate("\n", timeout=30)
    assert holding.returncode == 0
    _rig, lease = lease_rig("vm")
    lease.release()


def test_the_variable_alone_does_not_give_a_process_outside_the_hold_the_rig(
    lab: Path, hold, monkeypatch: pytest.MonkeyPatch
) -> None:
    holding = hold("vm", "sh", "-c", "echo ready; read line")
    assert _line(holding) == "ready"
    monkeypatch.setenv(HELD_ENV, "vm")
    with pytest.raises(LeaseError, match=rf"^{HELD_ENV}=vm, but no parent of this process holds that lease"):
        lease_rig("vm")


def test_two_commands_inside_one_hold_take_turns(lab: Path, hold) -> None:
    holding = hold("vm", sys.executable, "-c", TWO_AT_ONCE)
    assert _line(holding) == "vm vm True vm"
    status, error = _line(holding).split(" ", 1)
    assert status == "1"
    assert error.startswith("hil.errors.LeaseError: rig vm is leased by ")
    assert error.endswith("another command inside the same `hil rig hold`")


def test_the_shell_is_users_shell_and_its_status_is_the_holds(
    lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHELL", "/bin/sh")
    script = f"echo held=${HELD_ENV}\nexit 3\n"
    out = subprocess.run([sys.executable, "-m", "hil", "rig", "hold", "vm"], input=script,
                         capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert (out.returncode, out.stdout) == (3, "held=vm\n")
    assert "vm: held as vm by pid " in out.stderr


def test_a_killed_hold_frees_the_rig_and_stops_the_commands_inside(lab: Path, hold) -> None:
    # Through a shell, so the command inside is the hold's grandchild: only the hold's death reaches it.
    holding = hold("vm", "sh", "-c", f"{sys.executable} -c '{USE_UNTIL_STOPPED}'")
    assert _line(holding) == "vm vm True vm"
    inside = int(_line(holding).removeprefix("pid "))
    os.kill(holding.pid, signal.SIGKILL)
    holding.wait(timeout=10)
    _rig, lease = lease_rig("vm")  # free at once
    lease.release()
    assert _line(holding) == "stopped"
    deadline = time.monotonic() + 10
    while Path(f"/proc/{inside}").exists() and "zombie" not in Path(f"/proc/{inside}/status").read_text():
        assert time.monotonic() < deadline, "the command inside the killed hold kept running"
        time.sleep(0.1)
