"""The device under test as tests hold it: a facade over the rig's board, console and SSH.

The parts live beside it: the state machine and its fail-fast rule (`machine.py`), the console's login
(`login.py`), the SSH session (`ssh_session.py`) and the snapshot cache behind `fresh()`
(`snapshots.py`). BOOTED means the console reached its login (and hil logged in, where the OS profile
gives a login); READY adds an SSH session. An SSH failure breaks READY only: console-only tests keep
running.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from pathlib import Path
from typing import Any, TypeVar

import paramiko

from hil.console.engine import Console
from hil.console.result import CommandResult
from hil.console.ssh import HostKeyPin, SshLink
from hil.drivers.capabilities import BootCounter, BootSnapshots, capability_name, provided
from hil.dut.boards import Board
from hil.dut.boot_phases import boot_phases
from hil.dut.login import Watch, attach_console, await_login, await_restart
from hil.dut.machine import Machine, State, Steps
from hil.dut.snapshots import SavedBoot, SnapshotCache
from hil.dut.ssh_session import SshSession
from hil.errors import HilError, SshError, Unsupported
from hil.images.device_type import check_device_type, read_info
from hil.lab.rig import Rig
from hil.os.model import OsProfile
from hil.os.vocabulary import OsFeature

__all__ = ["Dut", "State"]

log = logging.getLogger("hil.dut")
C = TypeVar("C")


class Dut:
    """One DUT on one rig."""

    def __init__(self, rig: Rig, board: Board, artifacts: Path, profile: OsProfile | None = None) -> None:
        self.rig = rig
        self.profile = profile or rig.profile
        self.board = board
        self.artifacts = artifacts
        self.transcript = artifacts / "console.log"
        self.hostname = f"hil-{secrets.token_hex(3)}"
        self.ssh = SshSession(rig.name, self.profile, board, rig.spec.timeouts)
        steps = Steps(self._power_on, self._connect_ssh, self.ssh.close, self._power_down)
        self.machine = Machine(rig.name, steps, board.exit_reason)
        # mypy takes no protocol class where type[C] is expected (python/mypy#4717).
        self.snapshots = SnapshotCache(rig.name, provided(board, BootSnapshots))  # type: ignore[type-abstract]
        self.image: Path | None = None
        self.device_type_source = ""  # "image" (it says so) or "asserted" (the user said so)
        self.config: dict[str, Any] = {}
        self.console: Console | None = None
        self.boot_seconds: float | None = None
        # Every boot's phases (boot_phases.py), in order: the plugin records each test's as JUnit properties.
        self.boots: list[dict[str, float]] = []
        self.restores: list[float] = []  # seconds each snapshot restore took, to READY
        self._boot_began = (0, 0.0)  # where the boot being awaited began: console text position, seconds
        self._boots_seen = 0  # the board's count of boots at the last login, where the board counts them
        self.boot_id: str | None = None  # the kernel's id of the boot hil last reached over SSH
        self.os_version = ""

    @property
    def state(self) -> State:
        """How far the DUT has been brought."""
        return self.machine.state

    @property
    def broken(self) -> str | None:
        """Why the DUT is unusable, or None."""
        return self.machine.broken

    @property
    def logged_in(self) -> bool:
        """Whether hil holds a console shell (the profile gives a console login, and the DUT booted)."""
        return self.profile.login is not None and self.state >= State.BOOTED and self.console is not None

    @property
    def key(self) -> paramiko.PKey:
        """hil's SSH key for this DUT (the profile's key_file, or one made for this run)."""
        return self.ssh.key

    @property
    def public_key(self) -> str:
        """hil's public key, as config.json or authorized_keys carries it."""
        return self.ssh.public_key

    @property
    def _pin(self) -> HostKeyPin:
        """The SSH host key pin (the QEMU tests compare the pinned key across a restore)."""
        return self.ssh.pin

    # --- what the rig and the OS offer ----------------------------------------------------------

    def capability(self, capability: type[C]) -> C | None:
        """The board as `capability` (a protocol from hil.capabilities) when it declares it, else None."""
        return provided(self.board, capability)

    def require(self, capability: type[C]) -> C:
        """The board as `capability`; Unsupported (a skip, under pytest) naming it when the rig lacks it."""
        board = self.capability(capability)
        if board is None:
            name = capability_name(capability)
            raise Unsupported(f"rig {self.rig.name} ({self.rig.kind}) has no {name}", capability=name)
        return board

    def require_os(self, feature: OsFeature) -> None:
        """Unsupported (a skip, under pytest) naming `feature` when the OS profile lacks it."""
        reason = self.profile.lacks(feature)
        if reason:
            raise Unsupported(reason, feature=feature)

    # --- bringing the DUT up ----------------------------------------------------------------------

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
        self.config = self._config(config)
        with self.machine.failing():
            self.board.flash(image, self.config)
        self.ssh.forget_host()
        self.image = image
        self.machine.flashed(image)

    def transition(self, target: State) -> None:
        """Bring the DUT to `target`, walking the states in order."""
        self.machine.transition(target)

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
        cache = self.snapshots
        key = cache.key(image, self.profile.name, self._config(config)) if cache.board is not None else ""
        saved = cache.recall(key) if key and not self.broken else None
        if saved is not None:
            self._restore(key, saved)
            return self
        self.flash(image, config, device_type=device_type)
        self.boot()
        if key and cache.saving:
            self._save(key)
        return self

    def _config(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        return self.profile.config(hostname=self.hostname, ssh_public_key=self.public_key, extra=extra)

    def _save(self, key: str) -> None:
        """Snapshot the booted DUT with no SSH session open (the host end would be gone on restore)."""
        assert self.image is not None
        self.ssh.close()
        self.machine.ssh_closed()
        saved = SavedBoot(self.image, self.config, self.device_type_source, self.ssh.host_key)
        self.snapshots.save(key, saved, self.board.exit_reason)
        self.transition(State.READY)

    def _restore(self, key: str, saved: SavedBoot) -> None:
        self._power_down()
        start = time.monotonic()
        deadline = start + self.rig.spec.timeouts.boot
        with self.machine.failing():
            self.snapshots.restore(key, deadline)
            self.image, self.config = saved.image, saved.config
            self.device_type_source = saved.device_type_source
            self.ssh.trust_host(saved.host_key)
            self.machine.flashed(saved.image)
            self.console = self._attach_console(deadline, start)
            self.console.sendline()  # the restored shell (or getty) answers with its prompt
            self._await_login("a snapshot restore", start, restored=True)
        with self.machine.failing(ssh_only=True):
            self._connect_ssh()
        self._set_clock()
        self.restores.append(time.monotonic() - start)
        log.info("%s: restored from snapshot %s in %.1f s", self.rig.name, key[:12], self.restores[-1])

    def _set_clock(self) -> None:
        """A restored DUT's clock reads the time of the save: set it to now, on a whole second."""
        now = time.time()
        time.sleep(math.ceil(now) - now)
        self.run(self.profile.time.set_command.render(epoch=str(math.ceil(now)))).check()

    def _power_on(self) -> None:
        start = time.monotonic()
        deadline = start + self.rig.spec.timeouts.boot
        self.board.power_on(deadline)
        self.console = self._attach_console(deadline, start)
        self._boot_began = (0, 0.0)
        self._await_login("power-on", start)

    def _attach_console(self, deadline: float, started: float) -> Console:
        if self.console is not None:
            self.console.close()
        return attach_console(self.board, self.transcript, self.rig.name, deadline, started)

    def _await_login(
        self, after: str, start: float, timeout: float | None = None, *, restored: bool = False
    ) -> None:
        """Wait for the console's login and log in where the profile says how (a boot's phases are
        recorded; a snapshot restore is no boot)."""
        assert self.console is not None
        timeout = timeout or self.rig.spec.timeouts.boot
        left = max(1.0, start + timeout - time.monotonic())
        await_login(self.console, self.profile, self.rig.name, after=after, timeout=timeout, left=left)
        self.machine.booted(restored=restored)
        counter = self._counter()
        self._boots_seen = counter.boots_started() if counter is not None else 0
        self.boot_id = None  # a new boot (or a restore): SSH reads its id
        if restored:
            return
        self.boot_seconds = time.monotonic() - start
        since, begun = self._boot_began
        ended = time.monotonic() - self.console.started
        markers, prompted = self.profile.boot.phase_markers, self.console.prompt_seen
        self.boots.append(
            boot_phases(self.console, since, markers, begun=begun, prompted=prompted, ended=ended)
        )
        log.info("%s: console login %.1f s after %s", self.rig.name, self.boot_seconds, after)

    def _connect_ssh(self) -> None:
        self.ssh.connect(self.console if self.logged_in else None)
        self.machine.ready()
        version = self.ssh.os_version()
        if version is not None:
            self.os_version = version
        said = self.ssh.run(self.profile.boot.boot_id_command)
        self.boot_id = said.output.strip() if said.ok and said.output.strip() else None

    def _power_down(self) -> None:
        self.ssh.close()
        if self.console is not None:
            self.console.close()
            self.console = None
        self.board.power_off(self.rig.spec.timeouts.shutdown)
        self.boot_id = None
        self.machine.powered_down()

    # --- what tests do -------------------------------------------------------------------------

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run a command over SSH (the channel for exact output)."""
        self.transition(State.READY)
        with self.machine.failing():
            return self.ssh.run(command, timeout)

    def console_run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run a command on the serial console (works without a network; needs a console login)."""
        self.require_os("console-login")
        self.transition(State.BOOTED)
        assert self.console is not None
        with self.machine.failing():
            return self.console.run(command, timeout or self.rig.spec.timeouts.command)

    def shell_run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run a command on the console where hil can log in there, else over SSH."""
        if self.profile.login is not None:
            return self.console_run(command, timeout)
        return self.run(command, timeout)

    def put(self, local: Path, remote: str) -> None:
        """Copy a file to the DUT over SSH."""
        self.transition(State.READY)
        with self.machine.failing():
            self.ssh.put(local, remote)

    def get(self, remote: str, local: Path) -> None:
        """Copy a file from the DUT over SSH."""
        self.transition(State.READY)
        with self.machine.failing():
            self.ssh.get(remote, local)

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
        self.ssh.start(command)

    def power_cycle(self, off_time: float = 0.5) -> None:
        """Cold power cycle: cut power, wait, power on, back to READY."""
        self._power_down()
        time.sleep(off_time)
        self.transition(State.READY)

    def wait_for_reboot(self, after: str, timeout: float | None = None, *, restarts: int = 1) -> None:
        """The DUT is rebooting (asked to, or by an update or rollback): see it restart, then log in again.

        The restart shows on the console (the profile's restart pattern), in the board's count of boots
        (where it counts them), or as a new boot id over SSH, whichever comes first, so an OS that prints
        nothing on its console reboots too. `restarts`: how many restarts come before the boot to log in
        to (2: a trial boot that reboots by itself); a boot seen only by its boot id counts where SSH
        answered during it.
        """
        assert self.console is not None
        watch = self._watch()
        self.ssh.close()
        self.machine.ssh_closed()
        start = time.monotonic()
        limit = timeout or self.rig.spec.timeouts.boot
        with self.machine.failing():
            restart = await_restart(self.console, watch, limit, after, restarts=restarts)
            self._boot_began = (restart.position, restart.seconds)
            self._await_login(after, start, limit)
        with self.machine.failing(ssh_only=True):
            self._connect_ssh()

    def _counter(self) -> BootCounter | None:
        # mypy takes no protocol class where type[C] is expected (python/mypy#4717).
        return self.capability(BootCounter)  # type: ignore[type-abstract]

    def _watch(self) -> Watch:
        """What tells the next boot from this one: the console, the board's count, the boot id."""
        counter = self._counter()
        return Watch(
            self.profile.boot.restart_pattern,
            boots_started=counter.boots_started if counter is not None else None,
            boots_before=self._boots_seen,
            read_boot_id=self._read_boot_id,
            boot_id_before=self.boot_id,
        )

    def _read_boot_id(self, deadline: float) -> str:
        """The boot id over a link of its own, connecting until `deadline` (the DUT may be between boots;
        a restarted virtual board forwards SSH from a new port)."""
        board, ssh = self.board, self.profile.ssh
        link = SshLink(board.ssh_host, board.ssh_port, ssh.user, self.ssh.key, self.ssh.pin)
        try:
            link.connect(deadline)
            said = link.run(self.profile.boot.boot_id_command, self.rig.spec.timeouts.command)
        finally:
            link.close()
        if not said.ok or not said.output.strip():
            raise SshError(f"`{said.command}` exited {said.exit_code} on {self.rig.name}")
        return said.output.strip()

    def close(self) -> None:
        """Power off and release the board (temporary disks go; logs stay)."""
        try:
            self._power_down()
        except HilError:
            log.exception("%s: power down failed", self.rig.name)
        finally:
            self.board.close()
