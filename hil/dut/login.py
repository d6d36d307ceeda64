"""The console side of bringing a DUT up: attach its console, wait for the login and log in, see a reboot
begin. A wait that runs out is a BootTimeout giving the bound, the transcript and the last console lines;
a refused login names the user, the OS profile and where the password came from.

A reboot begins where the console shows the OS profile's restart pattern (the kernel's "reboot: Restarting
system"), where the board's count of boots moves on, or where SSH answers with a boot id other than the
last boot's, whichever comes first: a device that boots `console=null quiet`, as production balenaOS
does, prints no restart line.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hil.console.engine import Console
from hil.console.text import strip_kernel_lines
from hil.console.uart import SerialTransport
from hil.dut.boards import Board
from hil.errors import BootTimeout, ConsoleTimeout, LoginRefused
from hil.os.model import OsProfile

log = logging.getLogger("hil.dut")

WATCH_SLICE = 0.2  # seconds the console is waited on between two looks at the board's count
BOOT_ID_PERIOD = 2.0  # seconds between two asks of the boot id over SSH
_KERNEL_LINE_BEGUN = re.compile(r"\[ *[\d.]*\Z")  # a kernel line whose stamp is still arriving


def attach_console(board: Board, transcript: Path, name: str, deadline: float, started: float) -> Console:
    """The board's console line, its text going on in `transcript`; `started` is power-on (monotonic)."""
    transport = board.console_transport(max(1.0, deadline - time.monotonic()))
    console = Console(transport, transcript, name=name, closed_reason=board.exit_reason, started=started)
    if isinstance(transport, SerialTransport):  # a USB adapter can vanish and return: mark the gap
        transport.on_gap = lambda seconds: console.note(f"console line lost for {seconds:.1f} s; reconnected")
    return console


def await_login(
    console: Console, profile: OsProfile, name: str, *, after: str, timeout: float, left: float
) -> None:
    """Wait for the console's login (`left` seconds of `timeout`) and log in where the profile says how."""
    login, boot = profile.login, profile.boot
    try:
        if login is None:
            console.await_login_prompt(boot.login_prompt, timeout=left, wake=boot.wake_console)
        else:
            password = login.secret(profile.name)
            console.login(
                login.user, password, login_prompt=boot.login_prompt, timeout=left, wake=boot.wake_console
            )
    except ConsoleTimeout:
        raise BootTimeout(
            f"no login within {timeout:.0f} s after {after} on {name}; "
            f"transcript: {console.transcript}\nlast console lines:\n{console.tail(10)}"
        ) from None
    except LoginRefused as exc:
        assert login is not None  # only a login can be refused
        evidence = str(exc).split(". ", 1)[-1]
        source = f"login.password_env {login.password_env}" if login.password_env else "login.password"
        raise LoginRefused(
            f"the console of {name} refused the login as {login.user!r} (OS profile "
            f"{profile.name!r}): wrong user or password? check {source}\n{evidence}"
        ) from None


@dataclass(frozen=True)
class Watch:
    """What tells a reboot from the boot before it: the console's restart pattern; the board's count of
    boots (where it counts) as it stood at that boot; and a reader of the boot id over SSH (it raises
    while SSH does not answer) with the id that boot had, where hil read it."""

    restart_pattern: str
    boots_started: Callable[[], int] | None = None
    boots_before: int = 0
    read_boot_id: Callable[[float], str] | None = None
    boot_id_before: str | None = None

    def sources(self) -> str:
        """What is watched, in words, for a message."""
        named = [f"`{self.restart_pattern}` on the console"]
        if self.boots_started is not None:
            named.append("the board's count of boots")
        if self.read_boot_id is not None and self.boot_id_before:
            named.append("a new boot id over SSH")
        return ", ".join(named)


@dataclass(frozen=True)
class Restart:
    """A reboot seen: by what, where the new boot's console text begins, and when the boot began (seconds
    after power-on). Seen off the console, both are the latest moment known to be before the boot."""

    by: str
    position: int
    seconds: float


def await_restart(console: Console, watch: Watch, limit: float, after: str, *, restarts: int = 1) -> Restart:
    """The boot after `restarts` restarts (2: a trial boot that reboots by itself), seen within `limit`.

    Each way of seeing counts on its own: restart lines on the console, the board's boots, or new boot ids
    (a boot counts there only if SSH answered during it). The new boot has printed something besides
    kernel lines when this returns, so a login is never taken from the shell that went down.
    """
    deadline = time.monotonic() + limit
    began = before = (console.mark(), time.monotonic() - console.started)
    regex = re.compile(watch.restart_pattern, re.MULTILINE)
    probe = BootIds(watch.read_boot_id, console) if watch.read_boot_id and watch.boot_id_before else None
    lines = counted = 0
    try:
        while True:
            at = (console.mark(), time.monotonic() - console.started)
            counted = _counted(watch)
            if counted < restarts:
                before = at  # a moment known to be before the boot awaited, by the board's count
            wait = 0.0 if counted >= restarts else max(0.0, min(WATCH_SLICE, deadline - time.monotonic()))
            match = _next(console, regex, wait)
            if match is not None:  # the console's word is exact: it wins a tie
                lines += 1
                if lines >= restarts:
                    restart = Restart("console", match.start(), console.seconds_at(match.start()))
                    return _spoken(console, restart, match.end(), deadline)
                continue
            if counted >= restarts:
                return _spoken(console, Restart("board", *before), before[0], deadline)
            if _counted(watch) >= restarts:
                continue  # the board's count is the earlier word: take it next time round
            if probe is not None and (seen := probe.boot(restarts, watch.boot_id_before or "", began)):
                return _spoken(console, seen, seen.position, deadline)
            if time.monotonic() >= deadline:
                saw = max(lines, counted, probe.new_boots(watch.boot_id_before or "") if probe else 0)
                times = "" if restarts == 1 else f" {restarts} times"
                only = f" (it restarted {saw} of those times)" if restarts > 1 and saw else ""
                raise BootTimeout(
                    f"the DUT did not restart{times} within {limit:.0f} s after {after}{only}; watched: "
                    f"{watch.sources()}; transcript: {console.transcript}\n"
                    f"last console lines:\n{console.tail(10)}"
                )
    finally:
        if probe is not None:
            probe.stop()


def _counted(watch: Watch) -> int:
    """Boots the board started since the boot before, where it counts them (else 0)."""
    return watch.boots_started() - watch.boots_before if watch.boots_started is not None else 0


def _next(console: Console, regex: re.Pattern[str], timeout: float) -> re.Match[str] | None:
    """The next restart line on the console within `timeout`, or None."""
    try:
        return console.expect(regex, timeout)
    except ConsoleTimeout:
        return None


def _spoken(console: Console, restart: Restart, since: int, deadline: float) -> Restart:
    """`restart`, once the new boot has printed words other than kernel lines after `since` (or the
    deadline passed). Until then the console may end in the prompt of the shell that went down, to a login
    that looks past kernel lines: the kernel's restart line can land right after that prompt, and a silent
    console shows nothing else."""
    log.info("%s: restart seen by the %s", console.name, restart.by)
    while time.monotonic() < deadline:
        said = _KERNEL_LINE_BEGUN.sub("", strip_kernel_lines(console.text_since(since)))
        if said.strip():
            break
        time.sleep(0.05)
    return restart


class BootIds:
    """The boot ids SSH answers with, asked every BOOT_ID_PERIOD s on a thread of its own (an ask may
    wait for a DUT between boots), each kept with the console position and time its ask began at."""

    def __init__(self, read: Callable[[float], str], console: Console) -> None:
        self._read = read
        self._console = console
        self._answers: list[tuple[str, int, float]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._ask, daemon=True, name=f"hil-{console.name}-boot-id")
        self._thread.start()

    def _ask(self) -> None:
        while not self._stopped.is_set():
            # Where the console stood as the ask began: the boot that answers was up after that.
            asked = (self._console.mark(), time.monotonic() - self._console.started)
            try:
                # A try or two per ask: a DUT between boots is asked often, so each ask must cost it little.
                boot_id = self._read(time.monotonic() + BOOT_ID_PERIOD / 2)
            except Exception as exc:  # SSH does not answer between boots: ask again, never a traceback here
                log.debug("%s: no boot id yet: %s", self._console.name, exc)
            else:
                with self._lock:
                    self._answers.append((boot_id, *asked))
            self._stopped.wait(BOOT_ID_PERIOD)

    def new_boots(self, before: str) -> int:
        """How many boots other than `before`'s answered."""
        with self._lock:
            return len({boot_id for boot_id, _, _ in self._answers} - {before})

    def boot(self, restarts: int, before: str, began: tuple[int, float]) -> Restart | None:
        """The boot after `restarts` restarts, once that many boots other than `before`'s answered; it began
        after the last answer from an earlier boot (or after `began`, the wait's start)."""
        with self._lock:
            answers = list(self._answers)
        new = [boot_id for boot_id, _, _ in answers if boot_id != before]
        if len(set(new)) < restarts:
            return None
        final = new[-1]
        earlier = [(position, seconds) for boot_id, position, seconds in answers if boot_id != final]
        return Restart("boot id", *(earlier[-1] if earlier else began))

    def stop(self) -> None:
        """Ask no more (an ask under way ends on its own, its answer unused)."""
        self._stopped.set()
        self._thread.join(timeout=0.1)
