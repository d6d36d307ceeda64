"""A fake host under hil's QEMU board: QEMU processes that serve a console socket and exit on cue,
and a QMP monitor that answers and sends events, so the board's life cycle is tested in milliseconds
(as labgrid tests its QEMU driver with the process and the QMP greeting faked)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hil.drivers.qemu.board as board_module
from hil.console.unix_socket import UnixSocketTransport
from hil.drivers.qemu.disks import DiskSets
from hil.errors import QemuError

PIDS = itertools.count(40_000)


class FakeQemu:
    """A QEMU process: a pid, an exit status, and the console socket it serves while it runs."""

    def __init__(self, pid: int, number: int, console: Path | None) -> None:
        self.pid = pid
        self.number = number  # the board's first, second, ... process (pids may repeat)
        self.returncode: int | None = None
        self.received = bytearray()  # what reached its console
        self._ended = threading.Event()
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()  # an accept racing the exit: the link must hang up too
        self._server: socket.socket | None = None
        if console is not None:
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(str(console))
            self._server.listen()
            threading.Thread(target=self._serve, args=(self._server,), daemon=True).start()

    def _serve(self, server: socket.socket) -> None:
        while True:
            try:
                link, _ = server.accept()
            except OSError:
                return
            with self._lock:
                if self.returncode is not None:
                    link.close()
                    return
                self._links.append(link)
            threading.Thread(target=self._read, args=(link,), daemon=True).start()

    def _read(self, link: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the process ended under it
            link.sendall(f"process {self.number}\n".encode())
            while data := link.recv(4096):
                self.received += data

    def exit(self, status: int) -> None:
        """End with `status` (negative: killed by that signal); the console hangs up."""
        with self._lock:
            if self.returncode is not None:
                return
            self.returncode = status
            for sock in [*self._links, *([self._server] if self._server else [])]:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired("qemu", timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        self.exit(-9)


class FakeQmp:
    """A process's QMP link: answers commands, quits when told, and reports what the guest does."""

    def __init__(
        self,
        process: FakeQemu,
        on_event: Callable[[str, dict[str, Any]], None],
        *,
        hold: threading.Event | None = None,
        crash_on_cont: bool = False,
    ) -> None:
        self.process = process
        self.commands: list[str] = []
        self._on_event = on_event
        self._hold = hold
        self._crash_on_cont = crash_on_cont

    def connect(self, deadline: float, alive: Callable[[], bool]) -> str:
        if self._hold is not None:
            assert self._hold.wait(2), "the test never let this start go on"
        if not alive():
            raise QemuError("QEMU exited before its monitor answered")
        return "9.2.0"

    def execute(self, command: str, arguments: dict[str, Any] | None = None, timeout: float = 10) -> Any:
        self.commands.append(command)
        if command == "quit":
            self.guest("host-qmp-quit")
            self.process.exit(0)
        elif command == "cont" and self._crash_on_cont:
            self.process.exit(-11)
        elif command == "query-chardev":
            return [{"label": "serial0", "filename": "pty:/dev/pts/77"}]
        return {}

    def guest(self, reason: str) -> None:
        """QEMU's SHUTDOWN event: the guest reset (`guest-reset`) or powered off (`guest-shutdown`)."""
        self._on_event("SHUTDOWN", {"reason": reason})

    def close(self) -> None:
        pass


class Host:
    """The machine QEMU runs on: every process and QMP link a board made, and what the next start meets."""

    def __init__(self) -> None:
        self.processes: list[FakeQemu] = []
        self.links: list[FakeQmp] = []
        self.commands: list[str] = []
        self.pids: list[int] = []  # the pids the next processes get (fresh ones after)
        self.hold: threading.Event | None = None  # the next start waits for it as its monitor connects
        self.crash_on_cont = False

    def spawn(self, command: list[str], log_file: Path) -> FakeQemu:
        self.commands.append(" ".join(command))
        console = next((c for c in command if c.startswith("socket,path=")), None)
        path = Path(console.split(",")[1].removeprefix("path=")) if console else None
        pid = self.pids.pop(0) if self.pids else next(PIDS)
        self.processes.append(FakeQemu(pid, len(self.processes) + 1, path))
        return self.processes[-1]

    def qmp(self, path: Path, name: str, events: tuple[str, ...], on_event: Any) -> FakeQmp:
        hold, self.hold = self.hold, None
        self.links.append(FakeQmp(self.processes[-1], on_event, hold=hold, crash_on_cont=self.crash_on_cont))
        return self.links[-1]

    def hold_next_start(self) -> threading.Event:
        """Stop the next start as its monitor connects, until the returned event is set."""
        self.hold = threading.Event()
        return self.hold


def new_root(self: DiskSets) -> Path:
    self._made += 1
    root = self.workdir / f"disks-{self._made}"
    root.mkdir(parents=True)
    return root


def install(monkeypatch: pytest.MonkeyPatch) -> Host:
    """Put a fake host under every QEMU board made in this test: no QEMU, no qemu-img, no firmware."""
    fake = Host()
    monkeypatch.setattr(board_module, "spawn", fake.spawn)
    monkeypatch.setattr(board_module, "QmpLink", fake.qmp)
    monkeypatch.setattr(board_module, "tool", lambda name, package: name)
    monkeypatch.setattr(DiskSets, "new_root", new_root)
    return fake


def until(condition: Callable[[], object], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the board never got there"
        time.sleep(0.001)


def read_until(console: UnixSocketTransport, text: bytes, timeout: float = 2.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"{text!r} never came; got {seen!r}"
        seen += console.read(0.05)
    return seen


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `call` on a thread of its own; the list gets its result or the exception it raised."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


# --- restarts -----------------------------------------------------------------------------------------
