"""The QEMU board's process life cycle, on a fake host: processes that serve the console socket and exit
when told, and a fake QMP that answers and reports the guest's resets and power-offs. Each race that was
once fixed by hand is pinned here in milliseconds (labgrid tests its QEMU driver the same way)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

import hil.drivers.qemu.board as board_module
from hil.console.unix_socket import UnixSocketTransport
from hil.drivers.qemu.board import QemuBoard
from hil.drivers.qemu.disks import DiskSets
from hil.drivers.qemu.machine import Machine
from hil.drivers.qemu.process import MOVES, Lifecycle, State
from hil.errors import ConsoleClosed, QemuError
from hil.util.workdir import make_workdir

_PIDS = itertools.count(40_000)


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
        pid = self.pids.pop(0) if self.pids else next(_PIDS)
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


def _new_root(self: DiskSets) -> Path:
    self._made += 1
    root = self.workdir / f"disks-{self._made}"
    root.mkdir(parents=True)
    return root


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Host:
    """A fake host under hil's QEMU board: no QEMU, no qemu-img, no firmware."""
    fake = Host()
    monkeypatch.setattr(board_module, "spawn", fake.spawn)
    monkeypatch.setattr(board_module, "QmpLink", fake.qmp)
    monkeypatch.setattr(board_module, "tool", lambda name, package: name)
    monkeypatch.setattr(DiskSets, "new_root", _new_root)
    return fake


@pytest.fixture
def open_board(host: Host, tmp_path: Path) -> Iterator[Callable[..., QemuBoard]]:
    """Make boards on the fake host (a disk attached); each is closed afterwards."""
    boards: list[QemuBoard] = []

    def make(serial: Literal["socket", "pty"] = "socket") -> QemuBoard:
        board = QemuBoard("q", Machine(accel="tcg"), make_workdir("q"), tmp_path / "art", 22, serial=serial)
        board.attach_disk(Path("installer.img"))
        boards.append(board)
        return board

    yield make
    for board in boards:
        board.close()
    assert all(p.returncode is not None for p in host.processes), "a QEMU process was left running"


@pytest.fixture
def board(open_board: Callable[..., QemuBoard]) -> QemuBoard:
    """A powered QEMU board on the fake host."""
    made = open_board()
    made.power_on(time.monotonic() + 5)
    return made


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


def test_a_guest_reset_starts_a_new_process_and_the_console_follows_it(board: QemuBoard, host: Host) -> None:
    console = board.console_transport(1)
    read_until(console, b"process 1")
    host.links[0].guest("guest-reset")
    read_until(console, b"process 2")  # the reader followed the restart onto the new socket
    old, new = host.processes
    assert old.returncode == 0 and "quit" in host.links[0].commands, "the old process was not ended in order"
    assert board.state is State.RUNNING and board.pid == new.pid
    assert "-rtc base=utc" in host.commands[0]
    assert "-rtc base=20" in host.commands[1], "the RTC was not carried over"
    console.close()


def test_a_console_write_during_a_restart_waits_for_it_and_goes_on_to_the_new_process(
    board: QemuBoard, host: Host
) -> None:
    console = board.console_transport(1)
    go_on = host.hold_next_start()
    host.links[0].guest("guest-reset")
    until(lambda: host.processes[0].returncode is not None and len(host.processes) == 2)
    # The old socket is closed and the new process not yet up: the write used to fail with Broken pipe.
    writer, outcome = in_thread(lambda: console.write(b"\r"))
    writer.join(0.05)
    assert writer.is_alive(), "the write did not wait for the restart"
    go_on.set()
    writer.join(2)
    assert outcome == [None]
    console.write(b"after the restart\n")
    until(lambda: b"after the restart" in host.processes[1].received)
    console.close()


def test_a_qmp_command_during_a_restart_goes_to_the_new_process(board: QemuBoard, host: Host) -> None:
    go_on = host.hold_next_start()
    host.links[0].guest("guest-reset")
    until(lambda: len(host.processes) == 2)
    asker, outcome = in_thread(lambda: board.qmp("query-status"))
    asker.join(0.05)
    assert asker.is_alive(), "the command did not wait for the restart"
    go_on.set()
    asker.join(2)
    assert outcome == [{}] and host.links[1].commands[-1] == "query-status"


def test_a_power_off_during_a_restart_waits_for_it_and_ends_the_new_process(
    board: QemuBoard, host: Host
) -> None:
    go_on = host.hold_next_start()
    host.links[0].guest("guest-reset")
    until(lambda: len(host.processes) == 2)
    stopper, outcome = in_thread(board.power_off)
    stopper.join(0.05)
    assert stopper.is_alive(), "the power-off did not wait for the restart"
    go_on.set()
    stopper.join(2)
    assert outcome == [None] and board.state is State.OFF
    assert [p.returncode for p in host.processes] == [0, 0], "a QEMU process was left behind"


def test_a_reset_that_hils_power_off_overtook_starts_nothing(board: QemuBoard, host: Host) -> None:
    board.power_off()
    host.links[0].guest("guest-reset")  # QEMU reported the reset before the quit, hil's keeper sees it after
    board.close()
    for keeper in [t for t in threading.enumerate() if t.name == f"qemu-{board.name}"]:
        keeper.join(2)  # it acts on what was queued before the close, then ends
    assert len(host.processes) == 1 and board.state is State.OFF


# --- deaths -------------------------------------------------------------------------------------------


def test_the_process_a_restart_ended_is_not_a_death_but_the_new_one_dying_as_it_starts_is(
    board: QemuBoard, host: Host
) -> None:
    host.crash_on_cont = True  # the new process dies as its CPU starts, before the restart is done
    host.links[0].guest("guest-reset")
    until(lambda: board.state is State.DEAD)
    assert board.exit_reason() == (
        f"QEMU exited unexpectedly (killed by signal 11) (log: {board.stderr_log})"
    ), "the death was lost in the hand-over, or the retired process was taken for it"


def test_a_new_process_that_dies_before_its_monitor_answers_leaves_the_board_dead_saying_so(
    board: QemuBoard, host: Host
) -> None:
    console = board.console_transport(1)
    go_on = host.hold_next_start()
    host.links[0].guest("guest-panic")
    until(lambda: len(host.processes) == 2)
    host.processes[1].exit(1)
    go_on.set()
    with pytest.raises(ConsoleClosed):
        read_until(console, b"never")
    reason = board.exit_reason() or ""
    assert reason.startswith("QEMU did not come back after a guest-panic: QEMU did not start"), reason
    assert not board.is_on
    with pytest.raises(QemuError, match="did not come back"):
        board.qmp("query-status")
    console.close()


def test_a_retired_process_is_known_by_its_object_not_its_pid(board: QemuBoard, host: Host) -> None:
    host.pids = [host.processes[0].pid]  # the restarted process gets the retired one's pid back
    host.links[0].guest("guest-reset")
    until(lambda: len(host.processes) == 2 and board.state is State.RUNNING)
    assert host.processes[1].pid == host.processes[0].pid
    host.processes[1].exit(1)  # that process dies: a pid-keyed record took it for the retired one
    until(lambda: board.state is State.DEAD)
    assert (board.exit_reason() or "").startswith("QEMU exited unexpectedly (exit status 1)")


# --- guest power-offs ---------------------------------------------------------------------------------


def test_an_unexpected_guest_power_off_is_named_as_such_and_kept_through_hils_power_off(
    board: QemuBoard, host: Host
) -> None:
    host.links[0].guest("guest-shutdown")
    until(lambda: board.state is State.DEAD)
    reason = "the DUT powered itself off (QEMU shutdown: guest-shutdown)"
    assert board.exit_reason() == reason and not board.is_on
    assert host.processes[0].returncode == 0, "the paused QEMU was not ended"
    with pytest.raises(QemuError, match="powered itself off"):
        board.qmp("query-status")
    board.power_off()
    assert board.exit_reason() == reason
    board.power_on(time.monotonic() + 5)  # a dead board powers on again, its reason gone
    assert board.state is State.RUNNING and board.pid == host.processes[1].pid


def test_an_expected_guest_power_off_leaves_the_board_off_to_be_powered_on_with_another_disk(
    open_board: Callable[..., QemuBoard], host: Host
) -> None:
    board = open_board()
    board.expect_power_off()  # a flasher image: it writes the internal disk, then powers off
    board.power_on(time.monotonic() + 5)
    host.links[0].guest("guest-shutdown")
    board.wait_powered_off(2)
    assert board.state is State.OFF and not board.is_on and board.exit_reason() is None
    board.attach_disk(Path("internal.img"))
    board.power_on(time.monotonic() + 5)
    assert board.state is State.RUNNING
    assert "file=installer.img" in host.commands[0] and "file=internal.img" in host.commands[1]
    host.links[1].guest("guest-shutdown")  # the expectation was for one power-off only
    until(lambda: board.state is State.DEAD)


def test_a_power_off_that_does_not_come_names_the_console_log_and_its_last_lines(
    board: QemuBoard,
) -> None:
    board.serial_log.write_bytes(b"Flashing the internal disk\r\n\x1b[32mwriting rootfs 42%\x1b[0m\r\n")
    board.expect_power_off()
    with pytest.raises(QemuError) as failure:
        board.wait_powered_off(0.01)
    assert str(failure.value) == (
        "board q did not power itself off within 0.01 s; its console last printed: "
        f"Flashing the internal disk | writing rootfs 42% (console log: {board.serial_log})"
    )
    assert board.state is State.RUNNING


def test_a_crash_while_a_power_off_is_expected_is_still_a_death(board: QemuBoard, host: Host) -> None:
    board.expect_power_off()
    host.processes[0].exit(-9)
    with pytest.raises(QemuError, match=r"did not power off as expected: QEMU exited unexpectedly \(killed"):
        board.wait_powered_off(2)


def test_waiting_for_a_power_off_nobody_announced_is_refused(board: QemuBoard) -> None:
    with pytest.raises(QemuError, match=r"expects no power-off; call expect_power_off\(\) first"):
        board.wait_powered_off(2)


def test_on_a_pty_board_qemu_ends_itself_and_only_an_expected_power_off_leaves_it_off(
    open_board: Callable[..., QemuBoard], host: Host
) -> None:
    board = open_board(serial="pty")
    board.power_on(time.monotonic() + 5)
    board.expect_power_off()
    host.processes[0].exit(0)  # no keeper pauses this QEMU: it exits by itself
    board.wait_powered_off(2)
    assert board.state is State.OFF and board.pty_path == Path("/dev/pts/77")
    board.power_on(time.monotonic() + 5)
    host.processes[1].exit(0)
    until(lambda: board.state is State.DEAD)
    assert (board.exit_reason() or "").startswith("QEMU exited unexpectedly (exit status 0)")


# --- the state machine itself -------------------------------------------------------------------------


def test_a_move_in_progress_is_its_owners_and_every_other_move_waits_for_it() -> None:
    process = FakeQemu(next(_PIDS), 1, None)
    monitor = FakeQmp(process, lambda name, data: None)
    life = Lifecycle("q", lambda deadline, reset: (process, monitor), str, restarts=False)
    assert life.transition(State.STARTING)  # this thread is starting the board
    stopper, outcome = in_thread(lambda: life.power_off(1))
    stopper.join(0.05)
    assert stopper.is_alive(), "another thread's move did not wait for the start"
    assert not life.transition(State.RESTARTING), "a start can only end running or off"
    assert life.transition(State.RUNNING, running=(process, monitor))
    stopper.join(2)
    assert outcome == [None] and life.state is State.OFF and process.returncode == 0


def test_every_state_leads_back_to_off_and_only_a_start_leaves_it() -> None:
    assert MOVES[State.OFF] == {State.STARTING}
    for state in State:
        reached, frontier = {state}, [state]
        while frontier:
            for nxt in MOVES[frontier.pop()] - reached:
                reached.add(nxt)
                frontier.append(nxt)
        assert State.OFF in reached, f"{state} never gets back to off"
