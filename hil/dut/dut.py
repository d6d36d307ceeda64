"""The device under test as tests hold it: a facade over the rig's board, console and SSH.

Bringing the DUT to a state is a small state machine (off -> flashed -> booted -> ready):
`transition()` is a no-op when already there, and once a transition has failed the DUT is broken,
so later tests fail fast with the original reason instead of each waiting out its own timeout.
BOOTED means the console reached its login (and hil logged in, where the OS profile gives a login);
READY adds an SSH session. An SSH failure breaks READY only: console-only tests keep running.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, TypeVar

from hil.console.engine import Console
from hil.console.result import CommandResult
from hil.console.ssh import HostKeyPin, SshLink, authorize_key_command, generate_key, load_key
from hil.console.uart import SerialTransport
from hil.drivers.capabilities import BootSnapshots
from hil.dut.boards import Board
from hil.dut.boot_phases import boot_phases
from hil.errors import (
    BootTimeout,
    ConsoleTimeout,
    DutBroken,
    HilError,
    LoginRefused,
    QemuError,
    SshError,
    Unsupported,
)
from hil.images.hash import image_sha256
from hil.images.read import check_device_type, read_info
from hil.lab.rig import Rig
from hil.os.model import OsProfile

log = logging.getLogger("hil.dut")
C = TypeVar("C")


class State(IntEnum):
    """How far the DUT has been brought."""

    OFF = 0
    FLASHED = 1
    BOOTED = 2  # the console reached its login (logged in where the profile gives credentials)
    READY = 3  # SSH session up


@dataclass(frozen=True)
class SavedBoot:
    """What hil knew of a DUT when its board saved a snapshot of it, to be that DUT again on restore."""

    image: Path
    config: dict[str, Any]
    device_type_source: str
    host_key: Any  # the paramiko key the boot's SSH server showed: pinned again on restore


class Dut:
    """One DUT on one rig."""

    def __init__(self, rig: Rig, board: Board, artifacts: Path, profile: OsProfile | None = None) -> None:
        self.rig = rig
        self.profile = profile or rig.profile
        self.board = board
        self.artifacts = artifacts
        self.transcript = artifacts / "console.log"
        self.hostname = f"hil-{secrets.token_hex(3)}"
        key_file = self.profile.ssh.key_file
        self.key, self.public_key = load_key(key_file) if key_file else generate_key()
        self.state = State.OFF
        self.image: Path | None = None
        self.device_type_source = ""  # "image" (it says so) or "asserted" (the user said so)
        self.config: dict[str, Any] = {}
        self.console: Console | None = None
        self.boot_seconds: float | None = None
        # Every boot's phases (boot_phases.py), in order: the plugin records each test's as JUnit properties.
        self.boots: list[dict[str, float]] = []
        self.restores: list[float] = []  # seconds each snapshot restore took, to READY
        self._saved: dict[str, SavedBoot] = {}
        self._snapshots_off: str | None = None  # why the board could not save one (then hil stops trying)
        self._boot_began = (0, 0.0)  # where the boot being awaited began: console text position, seconds
        self.os_version = ""
        self._pin = HostKeyPin()
        self._ssh: SshLink | None = None
        self._broken: str | None = None
        self._ssh_broken: str | None = None
        self._booted_images: set[Path] = set()

    @property
    def broken(self) -> str | None:
        """Why the DUT is unusable, or None."""
        return self._broken

    @property
    def logged_in(self) -> bool:
        """Whether hil holds a console shell (the profile gives a console login, and the DUT booted)."""
        return self.profile.login is not None and self.state >= State.BOOTED and self.console is not None

    # --- what the rig and the OS offer ----------------------------------------------------------

    def capability(self, capability: type[C]) -> C | None:
        """The board as `capability` (a protocol from hil.capabilities) when it declares it, else None."""
        return self.board if capability in getattr(self.board, "provides", ()) else None  # type: ignore[return-value]

    def require(self, capability: type[C]) -> C:
        """The board as `capability`; Unsupported (a skip, under pytest) naming it when the rig lacks it."""
        board = self.capability(capability)
        if board is None:
            name = capability.name  # type: ignore[attr-defined]
            raise Unsupported(f"rig {self.rig.name} ({self.rig.kind}) has no {name}", capability=name)
        return board

    def require_os(self, feature: str) -> None:
        """Unsupported (a skip, under pytest) naming `feature` when the OS profile lacks it."""
        reason = self.profile.lacks(feature)
        if reason:
            raise Unsupported(reason, feature=feature)

    # --- state machine -------------------------------------------------------------------------

    def flash(
        self, image: Path, config: dict[str, Any] | None = None, *, device_type: str | None = None
    ) -> None:
        """Power off and write `image`, configured with the profile's config.json plus `config`.

        `device_type` is the user's word for an image that names none (refused without it).
        """
        self.device_type_source = check_device_type(
            read_info(image), self.rig.device_type, image, asserted=device_type or self.profile.device_type
        )
        self._power_down()
        self.config = self.profile.config(
            hostname=self.hostname, ssh_public_key=self.public_key, extra=config
        )
        with self._failing_breaks():
            self.board.flash(image, self.config)
        self._pin.reset()
        self.image = image
        self._ssh_broken = None
        # A reflash recovers a DUT that broke after this image had booted (a test left it wedged);
        # an image that never booted stays broken so every later test does not wait out its timeout.
        if image in self._booted_images:
            self._broken = None
        self.state = State.FLASHED

    def transition(self, target: State) -> None:
        """Bring the DUT to `target`, walking the states in order."""
        if self._broken:
            raise DutBroken(f"DUT on {self.rig.name} is broken since an earlier failure: {self._broken}")
        if target == State.READY and self._ssh_broken and self.state < State.READY:
            raise DutBroken(f"no SSH on {self.rig.name} since an earlier failure: {self._ssh_broken}")
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
        while self.state < target:
            step = steps[self.state]
            if step == self._connect_ssh:
                with self._failing_breaks(ssh_only=True):
                    step()
            else:
                with self._failing_breaks():
                    step()

    def boot(self) -> Dut:
        """Bring the DUT to a logged-in console and a live SSH session."""
        self.transition(State.READY)
        return self

    def fresh(
        self, image: Path, config: dict[str, Any] | None = None, *, device_type: str | None = None
    ) -> Dut:
        """The DUT freshly flashed with `image` (configured with `config`) and booted to READY.

        Where the board keeps snapshots, the first such DUT is saved once booted, and later ones with the
        same image and configuration start from that state instead of a flash and a boot: memory, disk
        and SSH host key as that boot left them, the clock set to now, console and SSH reconnected. Tests
        of booting itself use flash() and boot(), which always boot.
        """
        snapshots = self.capability(BootSnapshots)
        key = self._snapshot_key(image, config) if snapshots is not None else ""
        saved = self._saved.get(key)
        if snapshots is not None and saved is not None and not self._broken and snapshots.has_snapshot(key):
            self._restore(snapshots, key, saved)
            return self
        self.flash(image, config, device_type=device_type)
        self.boot()
        if snapshots is not None and self._snapshots_off is None:
            self._save(snapshots, key)
        return self

    def _snapshot_key(self, image: Path, config: dict[str, Any] | None) -> str:
        full = self.profile.config(hostname=self.hostname, ssh_public_key=self.public_key, extra=config)
        what = [image_sha256(image), self.profile.name, full]
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()

    def _save(self, snapshots: BootSnapshots, key: str) -> None:
        """Snapshot the booted DUT with no SSH session open (the host end would be gone on restore)."""
        assert self.image is not None
        self._close_ssh()
        self.state = State.BOOTED
        try:
            snapshots.save_snapshot(key)
        except QemuError as exc:
            if self.board.exit_reason():
                raise
            self._snapshots_off = str(exc)
            log.warning("%s: no snapshots on this board, every fresh DUT boots: %s", self.rig.name, exc)
        else:
            self._saved[key] = SavedBoot(self.image, self.config, self.device_type_source, self._pin.key)
        self.transition(State.READY)

    def _restore(self, snapshots: BootSnapshots, key: str, saved: SavedBoot) -> None:
        self._power_down()
        start = time.monotonic()
        deadline = start + self.rig.spec.timeouts.boot
        with self._failing_breaks():
            snapshots.restore_snapshot(key, deadline)
            self.image, self.config, self.device_type_source = (
                saved.image,
                saved.config,
                saved.device_type_source,
            )
            self._pin.key = saved.host_key
            self._ssh_broken = None
            self.state = State.FLASHED
            self._attach_console(deadline, start)
            assert self.console is not None
            self.console.sendline()  # the restored shell (or getty) answers with its prompt
            self._await_login("a snapshot restore", start, restored=True)
        with self._failing_breaks(ssh_only=True):
            self._connect_ssh()
        self._set_clock()
        self.restores.append(time.monotonic() - start)
        log.info("%s: restored from snapshot %s in %.1f s", self.rig.name, key[:12], self.restores[-1])

    def _set_clock(self) -> None:
        """A restored DUT's clock reads the time of the save: set it to now, on a whole second."""
        now = time.time()
        time.sleep(math.ceil(now) - now)
        self.run(self.profile.time.set_command.render(epoch=str(math.ceil(now)))).check()

    @contextlib.contextmanager
    def _failing_breaks(self, *, ssh_only: bool = False) -> Iterator[None]:
        """A failure inside marks the DUT (or only its SSH) broken; a board that died says so instead."""
        try:
            yield
        except Unsupported:
            raise
        except HilError as exc:
            reason = self.board.exit_reason()
            error: HilError = QemuError(reason) if reason and not isinstance(exc, QemuError) else exc
            why = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            if ssh_only and not reason:
                self._ssh_broken = why
            else:
                self._broken = why
            log.error("%s: %s", self.rig.name, why)
            if error is exc:
                raise
            raise error from exc

    def _need_image(self) -> None:
        raise HilError(f"nothing flashed on {self.rig.name}: call dut.flash(image) first")

    def _power_on(self) -> None:
        start = time.monotonic()
        deadline = start + self.rig.spec.timeouts.boot
        self.board.power_on(deadline)
        self._attach_console(deadline, start)
        self._boot_began = (0, 0.0)
        self._await_login("power-on", start)

    def _attach_console(self, deadline: float, started: float) -> None:
        if self.console is not None:
            self.console.close()
        transport = self.board.console_transport(max(1.0, deadline - time.monotonic()))
        console = Console(
            transport,
            self.transcript,
            name=self.rig.name,
            closed_reason=self.board.exit_reason,
            started=started,
        )
        if isinstance(transport, SerialTransport):  # a USB adapter can vanish and return: mark the gap
            transport.on_gap = lambda seconds: console.note(
                f"console line lost for {seconds:.1f} s; reconnected"
            )
        self.console = console

    def _await_login(
        self, after: str, start: float, timeout: float | None = None, *, restored: bool = False
    ) -> None:
        """Wait for the console's login and log in where the profile says how (a boot's phases are
        recorded; a snapshot restore is no boot)."""
        assert self.console is not None
        timeout = timeout or self.rig.spec.timeouts.boot
        remaining = max(1.0, start + timeout - time.monotonic())
        login, boot = self.profile.login, self.profile.boot
        try:
            if login is None:
                self.console.await_login_prompt(boot.login_prompt, timeout=remaining, wake=boot.wake_console)
            else:
                password = login.secret(self.profile.name)
                self.console.login(
                    login.user,
                    password,
                    login_prompt=boot.login_prompt,
                    timeout=remaining,
                    wake=boot.wake_console,
                )
        except ConsoleTimeout:
            tail = self.console.tail(10)
            raise BootTimeout(
                f"no login within {timeout:.0f} s after {after} on {self.rig.name}; "
                f"transcript: {self.transcript}\nlast console lines:\n{tail}"
            ) from None
        except LoginRefused as exc:
            evidence = str(exc).split(". ", 1)[-1]
            source = (
                f"login.password_env {login.password_env}"
                if login and login.password_env
                else "login.password"
            )
            raise LoginRefused(
                f"the console of {self.rig.name} refused the login as {login.user!r} (OS profile "
                f"{self.profile.name!r}): wrong user or password? check {source}\n{evidence}"
            ) from None
        self.state = State.BOOTED
        if restored:
            return
        self.boot_seconds = time.monotonic() - start
        since, begun = self._boot_began
        ended = time.monotonic() - self.console.started
        self.boots.append(
            boot_phases(
                self.console,
                since,
                self.profile.boot.phase_markers,
                begun=begun,
                prompted=self.console.prompt_seen,
                ended=ended,
            )
        )
        if self.image is not None:
            self._booted_images.add(self.image)
        log.info("%s: console login %.1f s after %s", self.rig.name, self.boot_seconds, after)

    def _connect_ssh(self) -> None:
        self._close_ssh()
        ssh = self.profile.ssh
        if ssh.key_file is None and ssh.key_injection == "console":
            self._authorize_key()
        link = SshLink(self.board.ssh_host, self.board.ssh_port, ssh.user, self.key, self._pin)
        try:
            link.connect(time.monotonic() + self.rig.spec.timeouts.ssh)
        except SshError as exc:
            raise SshError(f"{exc}{self._ssh_diagnosis()}") from None
        self._ssh = link
        self._await_boot_finished()
        self.state = State.READY
        if self.profile.identity.version_command:
            self.os_version = link.run(
                self.profile.identity.version_command, self.rig.spec.timeouts.command
            ).output.strip()

    def _authorize_key(self) -> None:
        """Append hil's per-run key to the SSH user's authorized_keys from the console shell."""
        if not self.logged_in:
            raise SshError(
                self.profile.way_in() or f"no console login on {self.rig.name} to add hil's key with"
            )
        assert self.console is not None
        out = self.console.run(
            authorize_key_command(self.profile.ssh.user, self.public_key), self.rig.spec.timeouts.command
        )
        if not out.ok:
            raise SshError(
                f"could not add hil's SSH key for {self.profile.ssh.user!r} on {self.rig.name}: "
                f"{out.output.strip().splitlines()[-1:] or ['no output']}"
            )

    def _ssh_diagnosis(self) -> str:
        """Why SSH failed, as the console sees it: the SSH server is not running (or not installed)."""
        if not self.logged_in:
            return ""
        assert self.console is not None
        server = self.profile.ssh.server
        check = self.profile.services.check.render(name=server)
        try:
            out = self.console.run(check, self.rig.spec.timeouts.command)
        except HilError:
            return ""
        if out.ok:
            return f"; the console shows the SSH server {server!r} running"
        return f"; no SSH server: {server!r} is not running on the DUT (`{check}` exited {out.exit_code})"

    def _await_boot_finished(self) -> None:
        """Run the profile's ready command (e.g. systemctl is-system-running --wait) within the bound."""
        command = self.profile.boot.ready_command
        if not command:
            return
        assert self._ssh is not None
        bound = self.profile.bounds.boot_to_ssh
        try:
            out = self._ssh.run(command, bound)
        except SshError as exc:
            raise BootTimeout(f"boot of {self.rig.name} did not finish within {bound:.0f} s: {exc}") from None
        log.info("%s: boot finished (`%s`: %s)", self.rig.name, command, out.output.strip() or out.exit_code)

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
        """Run a command on the serial console (works without a network; needs a console login)."""
        self.require_os("console-login")
        self.transition(State.BOOTED)
        assert self.console is not None
        with self._failing_breaks():
            return self.console.run(command, timeout or self.rig.spec.timeouts.command)

    def shell_run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run a command on the console where hil can log in there, else over SSH."""
        if self.profile.login is not None:
            return self.console_run(command, timeout)
        return self.run(command, timeout)

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
        """Warm reboot from the shell, then back to READY."""
        self.request_reboot()
        self.wait_for_reboot("a warm reboot")

    def request_reboot(self) -> None:
        """Ask the OS to reboot: on the console shell, or over SSH where hil has no console login."""
        command = self.profile.boot.reboot_command
        if self.profile.login is not None:
            self.transition(State.BOOTED)
            assert self.console is not None
            self.console.sendline(command)
            return
        self.transition(State.READY)
        assert self._ssh is not None
        # The session goes down with the OS: whether the command's exit status arrives is a race.
        with contextlib.suppress(SshError):
            self._ssh.run(f"({command}) >/dev/null 2>&1 &", timeout=10)

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
                restart = self.console.expect(self.profile.boot.restart_pattern, limit)
            except ConsoleTimeout:
                raise BootTimeout(
                    f"the DUT did not restart within {limit:.0f} s after {after}; transcript: "
                    f"{self.transcript}\nlast console lines:\n{self.console.tail(10)}"
                ) from None
            self._boot_began = (restart.start(), self.console.seconds_at(restart.start()))
            self._await_login(after, start, limit)
        with self._failing_breaks(ssh_only=True):
            self._connect_ssh()

    def close(self) -> None:
        """Power off and release the board (temporary disks go; logs stay)."""
        try:
            self._power_down()
        except HilError:
            log.exception("%s: power down failed", self.rig.name)
        finally:
            self.board.close()
