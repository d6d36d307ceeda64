"""The QEMU board's process life cycle, on a fake host: processes that serve the console socket and exit
when told, and a fake QMP that answers and reports the guest's resets and power-offs. Each race that was
once fixed by hand is pinned here in milliseconds (labgrid tests its QEMU driver the same way)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from hil.drivers.qemu.board import QemuBoard
from hil.drivers.qemu.machine import Machine
from hil.drivers.qemu.process import MOVES, Lifecycle, State
from hil.errors import ConsoleClosed, QemuError
from hil.util.workdir import make_workdir
from tests.support.fakes.qemu_host import PIDS, FakeQemu, FakeQmp, Host, in_thread, install, read_until, until


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Host:
    """A fake host under hil's QEMU board: no QEMU, no qemu-img, no firmware."""
    return install(monkeypatch)


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
    process = FakeQemu(next(PIDS), 1, None)
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
