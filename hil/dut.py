"""The device under test as tests hold it: a facade over the rig's board, console and SSH.

Bringing the DUT to a state is a small state machine (off -> flashed -> booted -> ready):
`transition()` is a no-op when already there, and once a transition has failed the DUT is broken,
so later tests fail fast with the original reason instead of each waiting out its own timeout.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from enum import IntEnum
from pathlib import Path
from typing import Any

from hil.boards import Board
from hil.console import Console
from hil.drivers.serial_console import SerialTransport
from hil.errors import BootTimeout, ConsoleTimeout, DutBroken, HilError, QemuError
from hil.image import check_device_type, read_info
from hil.os.base import OsProfile
from hil.result import CommandResult
from hil.rig import Rig
from hil.ssh import HostKeyPin, SshLink, generate_key

log = logging.getLogger("hil.dut")


class State(IntEnum):
    """How far the DUT has been brought."""

    OFF = 0
    FLASHED = 1
    BOOTED = 2  # logged in on the console
    READY = 3  # SSH session up


class Dut:
    """One DUT on one rig."""

    def __init__(self, rig: Rig, profile: OsProfile, board: Board, artifacts: Path) -> None:
        self.rig = rig
        self.profile = profile
        self.board = board
        self.artifacts = artifacts
        self.transcript = artifacts / "console.log"
        self.hostname = f"hil-{secrets.token_hex(3)}"
        self.key, self.public_key = generate_key()
        self.state = State.OFF
        self.image: Path | None = None
        self.config: dict[str, Any] = {}
        self.console: Console | None = None
        self.boot_seconds: float | None = None
        self.os_version = ""
        self._pin = HostKeyPin()
        self._ssh: SshLink | None = None
        self._broken: str | None = None
        self._booted_images: set[Path] = set()

    @property
    def broken(self) -> str | None:
        """Why the DUT is unusable, or None."""
        return self._broken

    # --- state machine -------------------------------------------------------------------------

    def flash(self, image: Path, config: dict[str, Any] | None = None) -> None:
        """Power off and write `image`, configured with the profile's config.json plus `config`."""
        check_device_type(read_info(image), self.rig.device_type, image)
        self._power_down()
        self.config = self.profile.config(
            hostname=self.hostname, ssh_public_key=self.public_key, extra=config
        )
        with self._failing_breaks():
            self.board.flash(image, self.config)
        self._pin.reset()
        self.image = image
        # A reflash recovers a DUT that broke after this image had booted (a test left it wedged);
        # an image that never booted stays broken so every later test does not wait out its timeout.
        if image in self._booted_images:
            self._broken = None
        self.state = State.FLASHED

    def transition(self, target: State) -> None:
        """Bring the DUT to `target`, walking the states in order."""
        if self._broken:
            raise DutBroken(f"DUT on {self.rig.name} is broken since an earlier failure: {self._broken}")
        if target == self.state:
            return
        if target < self.state:
            if target <= State.FLASHED:
                self._power_down()
            else:
                self._close_ssh()
                self.state = target
            return
        steps = {State.OFF: self._need_image, State.FLASHED: self._power_on, State.BOOTED: self._connect_ssh}
        with self._failing_breaks():
            while self.state < target:
                steps[self.state]()

    def boot(self) -> Dut:
        """Bring the DUT to a logged-in console and a live SSH session."""
        self.transition(State.READY)
        return self

    @contextlib.contextmanager
    def _failing_breaks(self) -> Iterator[None]:
        """A failure inside marks the DUT broken; a board that died says so instead of a symptom."""
        try:
            yield
        except HilError as exc:
            reason = self.board.exit_reason()
            error: HilError = QemuError(reason) if reason and not isinstance(exc, QemuError) else exc
            self._broken = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            log.error("%s: %s", self.rig.name, self._broken)
            if error is exc:
                raise
            raise error from exc

    def _need_image(self) -> None:
        raise HilError(f"nothing flashed on {self.rig.name}: call dut.flash(image) first")

    def _power_on(self) -> None:
        start = time.monotonic()
        deadline = start + self.rig.spec.timeouts.boot
        self.board.power_on(deadline)
        self._attach_console(deadline)
        self._await_login("power-on", start)

    def _attach_console(self, deadline: float) -> None:
        if self.console is not None:
            self.console.close()
        transport = self.board.console_transport(max(1.0, deadline - time.monotonic()))
        console = Console(
            transport, self.transcript, name=self.rig.name, closed_reason=self.board.exit_reason
        )
        if isinstance(transport, SerialTransport):  # a USB adapter can vanish and return: mark the gap
            transport.on_gap = lambda seconds: console.note(
                f"console line lost for {seconds:.1f} s; reconnected"
            )
        self.console = console

    def _await_login(self, after: str, start: float, timeout: float | None = None) -> None:
        assert self.console is not None
        timeout = timeout or self.rig.spec.timeouts.boot
        try:
            self.console.login(
                self.profile.login_user,
                self.profile.login_password,
                login_prompt=self.profile.login_prompt,
                timeout=max(1.0, start + timeout - time.monotonic()),
            )
        except ConsoleTimeout:
            tail = self.console.tail(10)
            raise BootTimeout(
                f"no login within {timeout:.0f} s after {after} on {self.rig.name}; "
                f"transcript: {self.transcript}\nlast console lines:\n{tail}"
            ) from None
        self.boot_seconds = time.monotonic() - start
        self.state = State.BOOTED
        if self.image is not None:
            self._booted_images.add(self.image)
        log.info("%s: console login %.1f s after %s", self.rig.name, self.boot_seconds, after)

    def _connect_ssh(self) -> None:
        self._close_ssh()
        link = SshLink(self.board.ssh_host, self.board.ssh_port, self.profile.ssh_user, self.key, self._pin)
        link.connect(time.monotonic() + self.rig.spec.timeouts.ssh)
        self._ssh = link
        self.state = State.READY
        self.os_version = link.run(
            self.profile.version_command, self.rig.spec.timeouts.command
        ).output.strip()

    def _close_ssh(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None

    def _power_down(self) -> None:
        self._close_ssh()
        if self.console is not None:
            self.console.close()
            self.console = None
        self.board.power_off(self.rig.spec.timeouts.shutdown)
        self.state = State.FLASHED if self.image else State.OFF

    # --- what tests do -------------------------------------------------------------------------

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run a command over SSH (the channel for exact output)."""
        self.transition(State.READY)
        assert self._ssh is not None
        with self._failing_breaks():
            return self._ssh.run(command, timeout or self.rig.spec.timeouts.command)

    def console_run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run a command on the serial console (works without a network)."""
        self.transition(State.BOOTED)
        assert self.console is not None
        with self._failing_breaks():
            return self.console.run(command, timeout or self.rig.spec.timeouts.command)

    def put(self, local: Path, remote: str) -> None:
        """Copy a file to the DUT over SSH."""
        self.transition(State.READY)
        assert self._ssh is not None
        with self._failing_breaks():
            self._ssh.put(local, remote)

    def get(self, remote: str, local: Path) -> None:
        """Copy a file from the DUT over SSH."""
        self.transition(State.READY)
        assert self._ssh is not None
        with self._failing_breaks():
            self._ssh.get(remote, local)

    def reboot(self) -> None:
        """Warm reboot from the shell, then back to READY on the same console line."""
        self.transition(State.BOOTED)
        assert self.console is not None
        self.console.sendline(self.profile.reboot_command)
        self.wait_for_reboot("a warm reboot")

    def power_cycle(self, off_time: float = 0.5) -> None:
        """Cold power cycle: cut power, wait, power on, back to READY."""
        self._power_down()
        time.sleep(off_time)
        self.transition(State.READY)

    def wait_for_reboot(self, after: str, timeout: float | None = None) -> None:
        """The DUT is rebooting (asked to, or by an update or rollback): see it restart, then log in again."""
        assert self.console is not None
        self._close_ssh()
        self.state = State.BOOTED
        start = time.monotonic()
        limit = timeout or self.rig.spec.timeouts.boot
        with self._failing_breaks():
            try:
                self.console.expect(self.profile.restart_pattern, limit)
            except ConsoleTimeout:
                raise BootTimeout(
                    f"the DUT did not restart within {limit:.0f} s after {after}; transcript: "
                    f"{self.transcript}\nlast console lines:\n{self.console.tail(10)}"
                ) from None
            self._await_login(after, start, limit)
            self._connect_ssh()

    def close(self) -> None:
        """Power off and release the board (temporary disks go; logs stay)."""
        try:
            self._power_down()
        except HilError:
            log.exception("%s: power down failed", self.rig.name)
        finally:
            self.board.close()
