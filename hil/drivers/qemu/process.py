"""The life of a virtual board's QEMU process: one state, changed in one place.

Three kinds of thread act on a board: hil's own (power on, power off, questions), the keeper (a guest
reset or power-off, which QEMU's monitor reports) and a watcher per process (its exit). None of them
changes the state but through `Lifecycle.transition()`, which holds the lock for the check and the
change, and never while QEMU is asked anything. A move in progress (STARTING, RESTARTING, STOPPING)
belongs to the thread that began it: only that thread ends it, and any other thread's move waits until
it has. Every such move is bounded by its owner: a start by its deadline, a restart by RESTART_WAIT, a
stop by its grace and then SIGKILL.

A process is known by its object, never by its pid: a later process may be given a retired one's pid.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from hil.errors import QemuError
from hil.util.hostproc import die_with_parent

log = logging.getLogger("hil.qemu")

RESETS = ("guest-reset", "host-qmp-system-reset", "guest-panic")
HIL_ENDED = ("host-qmp-quit", "host-signal")  # hil's own power-off, or a restart ending the old process
RESTART_WAIT = 30.0  # for a new process to take over after a reset
END_GRACE = 5.0  # for a process hil ends after a reset or a guest power-off


class State(enum.Enum):
    """Where a board's QEMU process is in its life."""

    OFF = "off"  # no process: never started, powered off by hil, or by the guest as expected
    STARTING = "starting"  # hil powers on: a process starts, its monitor connects, its CPU runs
    RUNNING = "running"  # the process runs the guest
    RESTARTING = "restarting"  # after a guest reset: the old process ends, a new one starts on the same disk
    STOPPING = "stopping"  # the process is being ended: by hil, or after the guest powered off
    DEAD = "dead"  # the process ended without hil asking, or did not come back: `reason` says why


MOVING = frozenset({State.STARTING, State.RESTARTING, State.STOPPING})
MOVES: dict[State, frozenset[State]] = {
    State.OFF: frozenset({State.STARTING}),
    State.STARTING: frozenset({State.RUNNING, State.OFF}),
    # OFF straight from RUNNING: an expected power-off on a board whose QEMU ends by itself (no keeper).
    State.RUNNING: frozenset({State.RESTARTING, State.STOPPING, State.DEAD, State.OFF}),
    State.RESTARTING: frozenset({State.RUNNING, State.DEAD}),
    State.STOPPING: frozenset({State.OFF, State.DEAD}),
    State.DEAD: frozenset({State.STARTING, State.STOPPING}),  # stopping a dead board keeps its reason
}


class Process(Protocol):
    """What the life cycle needs of a QEMU process (a subprocess.Popen)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


class Monitor(Protocol):
    """What the life cycle needs of a process's QMP link (a QmpLink)."""

    def execute(self, command: str, arguments: dict[str, Any] | None = None, timeout: float = 10) -> Any: ...

    def close(self) -> None: ...


# Starts a process and lets its CPU run, by `deadline`; given the reset that ended the last one, if any.
Start = Callable[[float, str | None], tuple[Process, Monitor]]
Shutdown = tuple[Process, str]  # the process QEMU stopped, and its reason


def spawn(command: list[str], log_file: Path) -> subprocess.Popen[bytes]:
    """Start a QEMU process that dies with hil's thread that starts it; its output goes on `log_file`."""
    with log_file.open("ab") as out:
        out.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(command)}\n".encode())
        out.flush()
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # Ctrl-C reaches hil, which stops the board in order
            preexec_fn=die_with_parent,
        )


class Lifecycle:
    """The QEMU processes of one board, one after another, and the state they leave the board in.

    `start` makes each process; `describe_exit` says why one ended by itself (from its exit status). With
    `restarts`, a guest reset starts a new process and a guest power-off ends it, both on the keeper: a
    thread that lives as long as the board, because PR_SET_PDEATHSIG kills a child when the *thread*
    that forked it ends.
    """

    def __init__(
        self, name: str, start: Start, describe_exit: Callable[[int], str], *, restarts: bool
    ) -> None:
        self.name = name
        self._start = start
        self._describe_exit = describe_exit
        self._restarts = restarts
        self._changed = threading.Condition(threading.RLock())
        self.state = State.OFF
        self.reason: str | None = None  # why the board is DEAD (kept through STOPPING)
        self.generation = 0  # processes that reached RUNNING, restarts included
        self._owner: int | None = None  # the thread whose move is in progress
        self._process: Process | None = None
        self._monitor: Monitor | None = None
        self._power_off_expected = False  # until the next process ends: a guest power-off is the outcome
        self._shutdowns: queue.SimpleQueue[Shutdown | None] = queue.SimpleQueue()
        self._keeper: threading.Thread | None = None

    # --- the one transition ------------------------------------------------------------------------

    def transition(
        self,
        to: State,
        *,
        of: Process | None = None,
        reason: str | None = None,
        running: tuple[Process, Monitor] | None = None,
    ) -> bool:
        """Move to `to` if the state allows it (with `of`: only while `of` is the current process).

        Waits first for another thread's move in progress to end. RUNNING takes the `running` process
        and its monitor; DEAD (and STOPPING) take `reason`, or keep the one there is.
        """
        with self._changed:
            self._await_turn()
            if to not in MOVES[self.state] or (of is not None and of is not self._process):
                return False
            log.debug("%s: %s -> %s", self.name, self.state.value, to.value)
            if reason is not None:
                self.reason = reason
            if to is State.STARTING or to is State.OFF:
                self.reason = None
            if to is State.OFF or to is State.DEAD:
                self._power_off_expected = False
            if to is State.OFF:
                self._process = self._monitor = None
            if to is State.RUNNING:
                assert running is not None, "RUNNING needs the process that runs"
                self._process, self._monitor = running
                self.generation += 1
                threading.Thread(
                    target=self._watch, args=(running[0],), daemon=True, name=f"qemu-{self.name}-watch"
                ).start()
            self.state = to
            self._owner = threading.get_ident() if to in MOVING else None
            self._changed.notify_all()
            return True

    def _await_turn(self) -> None:
        """Wait, holding the lock, until no other thread has a move in progress."""
        me = threading.get_ident()
        self._changed.wait_for(lambda: self.state not in MOVING or self._owner == me)

    # --- what hil asks -----------------------------------------------------------------------------

    @property
    def process(self) -> Process | None:
        """The current process (it may have ended: see is_on)."""
        return self._process

    @property
    def is_on(self) -> bool:
        """Powered: starting, running or restarting (not once its process died or is being stopped)."""
        state, process = self.state, self._process
        if state is State.RUNNING:
            return process is not None and process.poll() is None
        return state is State.STARTING or state is State.RESTARTING

    def power_on(self, deadline: float) -> None:
        """Start a process unless one runs (a restart in progress ends first)."""
        with self._changed:
            if self._restarts and self._keeper is None:
                self._keeper = threading.Thread(target=self._keep, daemon=True, name=f"qemu-{self.name}")
                self._keeper.start()
        if not self.transition(State.STARTING):
            return  # on already
        try:
            self._end(grace=1)  # whatever a process that died left behind (its monitor)
            running = self._start(deadline, None)
        except BaseException:
            self.transition(State.OFF)
            raise
        self.transition(State.RUNNING, running=running)

    def power_off(self, grace: float) -> None:
        """End the process (QMP quit, SIGKILL after `grace` s); a dead board stays DEAD with its reason."""
        if not self.transition(State.STOPPING):
            return  # off already
        try:
            self._end(grace)
        finally:
            self.transition(State.DEAD if self.reason else State.OFF)

    def expect_power_off(self) -> None:
        """Take the guest's next power-off as the outcome (the board goes OFF), not as the DUT dying."""
        with self._changed:
            self._power_off_expected = True

    @property
    def power_off_expected(self) -> bool:
        """Whether the current (or next) process is expected to end by a guest power-off."""
        return self._power_off_expected

    def wait_off(self, timeout: float) -> State:
        """Wait up to `timeout` s until no process runs (OFF or DEAD); the state then."""
        with self._changed:
            self._changed.wait_for(lambda: self.state is State.OFF or self.state is State.DEAD, timeout)
            return self.state

    def monitor(self) -> Monitor | None:
        """The running process's QMP link, once a move in progress has ended; None when none runs."""
        with self._changed:
            self._await_turn()
            process = self._process
            if self.state is State.RUNNING and process is not None and process.poll() is None:
                return self._monitor
            return None

    def follow(self, seen: int) -> int | None:
        """After the console lost the process of generation `seen`: the generation that took over, or
        None when none did (the restart in progress, if any, ends first)."""
        with self._changed:
            self._await_turn()
            if self.state is State.RUNNING and self.generation != seen:
                return self.generation
            return None

    def exit_reason(self) -> str | None:
        """Why the process died, in one line (None while it runs, restarts, or when hil stopped it)."""
        with self._changed:
            state, process = self.state, self._process
        if state is State.RUNNING and process is not None:
            # Asked after a failure: a dropped SSH or console link is often seen a moment before the
            # dead process is reaped, and the cause is worth that moment over the symptom.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.5)
            if process.returncode is not None:
                self._exited(process, process.returncode)
        with self._changed:
            return self.reason if self.state is State.DEAD or self.state is State.STOPPING else None

    def shutdown(self, process: Process, reason: str) -> None:
        """QEMU stopped the guest (its SHUTDOWN event, on the monitor's thread): hand a reset or a guest
        power-off to the keeper. Never blocks: the monitor's thread also carries QMP's answers."""
        if self._restarts and reason not in HIL_ENDED:
            self._shutdowns.put((process, reason))

    def close(self, grace: float) -> None:
        """Power off and end the keeper, after the processes it started."""
        self.power_off(grace)
        self._shutdowns.put(None)

    # --- the other threads ---------------------------------------------------------------------------

    def _watch(self, process: Process) -> None:
        self._exited(process, process.wait())

    def _exited(self, process: Process, status: int) -> None:
        """`process` ended with `status`: a death, unless hil ended it, a restart retired it, or the guest
        powered off as expected (QEMU ends by itself with status 0 where no keeper pauses it). A process
        is watched from the moment it is RUNNING, so no death falls between its start and that."""
        with self._changed:
            if self.state is not State.RUNNING or process is not self._process:
                return  # ended by hil or by a restart, or already seen (a process, not a pid)
            if status == 0 and self._power_off_expected:
                self.transition(State.OFF, of=process)
                log.info("%s: the guest powered off, as expected", self.name)
                return
            why = self._describe_exit(status)
            self.transition(State.DEAD, of=process, reason=why)
        log.warning("%s: %s", self.name, why)

    def _keep(self) -> None:
        while (shutdown := self._shutdowns.get()) is not None:
            process, reason = shutdown
            if reason in RESETS:
                self._restart(process, reason)
            else:
                self._powered_off(process, reason)

    def _restart(self, old: Process, reset: str) -> None:
        """A reset: a new process on the same disk, firmware variables and RTC."""
        if not self.transition(State.RESTARTING, of=old):
            return  # powered off by hil meanwhile, or it died
        log.info("%s: %s: starting a fresh QEMU process on the same disk", self.name, reset)
        try:
            self._end(END_GRACE)
            running = self._start(time.monotonic() + RESTART_WAIT, reset)
        except Exception as exc:
            why = f"QEMU did not come back after a {reset}: {exc}"
            log.error("%s: %s", self.name, why)
            self.transition(State.DEAD, reason=why)
            return
        self.transition(State.RUNNING, running=running)

    def _powered_off(self, process: Process, reason: str) -> None:
        """A guest power-off: QEMU ends, as it would by itself; expected, it leaves the board OFF."""
        with self._changed:
            self._await_turn()
            expected = self._power_off_expected
            why = None if expected else f"the DUT powered itself off (QEMU shutdown: {reason})"
            if not self.transition(State.STOPPING, of=process, reason=why):
                return  # powered off by hil meanwhile
        if expected:
            log.info("%s: the guest powered off, as expected", self.name)
        else:
            log.warning("%s: %s", self.name, why)
        try:
            self._end(END_GRACE)
        finally:
            self.transition(State.OFF if expected else State.DEAD)

    def _end(self, grace: float) -> None:
        """End the current process and its monitor: QMP quit, then SIGKILL after `grace` s. Only the
        owner of the move in progress calls this."""
        process, monitor = self._process, self._monitor
        if monitor is not None:
            if process is not None and process.poll() is None:
                with contextlib.suppress(QemuError):
                    monitor.execute("quit", timeout=grace)
            monitor.close()
        if process is not None:
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
