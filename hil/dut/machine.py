"""How far a DUT has been brought (off -> flashed -> booted -> ready), and the fail-fast rule.

`transition()` is a no-op when already there and walks the states in order, one step at a time. Once a
step has failed the machine is broken, so later transitions fail at once with the first reason instead
of each waiting out its own timeout (labgrid's strategy rule). A failed SSH step breaks READY only, so
console-only tests keep running. A board that died is named instead of its symptom. A reflash recovers
a machine whose image had booted before; an image that never booted stays broken.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from hil.errors import DutBroken, HilError, QemuError, Unsupported

log = logging.getLogger("hil.dut")


class State(IntEnum):
    """How far the DUT has been brought."""

    OFF = 0
    FLASHED = 1
    BOOTED = 2  # the console reached its login (logged in where the profile gives credentials)
    READY = 3  # SSH session up


@dataclass(frozen=True)
class Steps:
    """What the DUT does to go from one state to the next; the machine decides when. Each step reports
    the state it reached (`booted()`, `ready()`, `powered_down()`); only a flash leaves OFF."""

    power_on: Callable[[], None]  # FLASHED -> BOOTED: power on, reach the console's login
    connect_ssh: Callable[[], None]  # BOOTED -> READY: open the SSH session
    close_ssh: Callable[[], None]  # READY -> BOOTED
    power_down: Callable[[], None]  # any -> FLASHED (OFF while nothing was flashed)


class Machine:
    """The DUT's state, why it is broken if it is, and the one transition that changes it."""

    def __init__(self, name: str, steps: Steps, exit_reason: Callable[[], str | None]) -> None:
        self.name = name
        self._steps = steps
        self._exit_reason = exit_reason  # why the board stopped on its own, or None
        self._lock = threading.RLock()
        self._state = State.OFF
        self._broken: str | None = None
        self._ssh_broken: str | None = None
        self._flashed: Path | None = None
        self._booted_images: set[Path] = set()

    @property
    def state(self) -> State:
        """How far the DUT has been brought."""
        return self._state

    @property
    def broken(self) -> str | None:
        """Why the DUT is unusable, or None."""
        return self._broken

    @property
    def ssh_broken(self) -> str | None:
        """Why the DUT has no SSH (its console may still work), or None."""
        return self._ssh_broken

    def transition(self, target: State) -> None:
        """Bring the DUT to `target`, walking the states in order; fail at once when broken."""
        with self._lock:
            if self._broken:
                raise DutBroken(f"DUT on {self.name} is broken since an earlier failure: {self._broken}")
            if target == State.READY and self._ssh_broken and self._state < State.READY:
                raise DutBroken(f"no SSH on {self.name} since an earlier failure: {self._ssh_broken}")
            if target < self._state:
                if target <= State.FLASHED:
                    self._steps.power_down()
                else:
                    self._steps.close_ssh()
                    self._state = target
                return
            while self._state < target:
                before = self._state
                with self.failing(ssh_only=before == State.BOOTED):
                    if before == State.OFF:
                        raise HilError(f"nothing flashed on {self.name}: call dut.flash(image) first")
                    (self._steps.power_on if before == State.FLASHED else self._steps.connect_ssh)()
                if self._state <= before:
                    raise HilError(f"DUT on {self.name}: the step from {before.name} did not leave it")

    @contextlib.contextmanager
    def failing(self, *, ssh_only: bool = False) -> Iterator[None]:
        """A failure inside breaks the DUT (or only its SSH); a board that died says so instead."""
        try:
            yield
        except Unsupported:
            raise
        except HilError as exc:
            reason = self._exit_reason()
            error: HilError = QemuError(reason) if reason and not isinstance(exc, QemuError) else exc
            why = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            if ssh_only and not reason:
                self._ssh_broken = why
            else:
                self._broken = why
            log.error("%s: %s", self.name, why)
            if error is exc:
                raise
            raise error from exc

    # --- what the DUT reports as it goes ---------------------------------------------------------

    def flashed(self, image: Path) -> None:
        """`image` was written (or a snapshot of it restored): FLASHED, with SSH to be tried afresh.

        A reflash recovers a DUT that broke after this image had booted (a test left it wedged); an
        image that never booted stays broken, so every later test does not wait out its timeout.
        """
        with self._lock:
            self._flashed = image
            self._ssh_broken = None
            if image in self._booted_images:
                self._broken = None
            self._state = State.FLASHED

    def booted(self, *, restored: bool = False) -> None:
        """The console reached its login: BOOTED (a restored snapshot proves no boot of the image)."""
        with self._lock:
            if not restored and self._flashed is not None:
                self._booted_images.add(self._flashed)
            self._state = State.BOOTED

    def ready(self) -> None:
        """The SSH session is up: READY."""
        with self._lock:
            self._state = State.READY

    def ssh_closed(self) -> None:
        """The SSH session was closed (a snapshot is taken, a reboot is under way): BOOTED at most."""
        with self._lock:
            self._state = min(self._state, State.BOOTED)

    def powered_down(self) -> None:
        """Power is off: FLASHED, or OFF while nothing was flashed."""
        with self._lock:
            self._state = State.FLASHED if self._flashed is not None else State.OFF
