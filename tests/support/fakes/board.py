"""A board with no hardware: flashing records the image, power serves a fake console (a getty, then a
real shell on a pty), so the DUT state machine runs in milliseconds. SSH is served only when asked
(`ssh=True`): a fake SSH server (tests/support/fakes/ssh_server.py) that lets in the keys config.json
carries, with a host key the DUT makes anew at each flash, as a real image does at its first boot.
`SnapshotBoard` also keeps boot snapshots, as the QEMU board does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import paramiko

from hil.console.ssh import generate_key
from hil.console.unix_socket import UnixSocketTransport
from hil.drivers.capabilities import BootSnapshots
from hil.errors import HilError, QemuError
from tests.support.fakes.console_dut import FakeDut
from tests.support.fakes.ssh_server import Answer, FakeSshServer


class FakeBoard:
    """Power on starts a FakeDut behind a Unix socket; `boots=False` makes power-on fail like a dead board."""

    provides: tuple[type, ...] = ()
    ssh_host = "127.0.0.1"
    ssh_port = 9  # discard: nothing answers SSH here, unless the board serves it

    def __init__(
        self,
        workdir: Path,
        *,
        password: str = "secret",
        boots: bool = True,
        ssh: bool = False,
        answer: Answer | None = None,
    ) -> None:
        self.workdir = workdir
        self.password = password
        self.boots = boots
        self.serves_ssh = ssh
        self.answer = answer  # how the SSH server answers what it does not know itself
        self.flashed: list[tuple[Path, dict[str, Any]]] = []
        self.console: FakeDut | None = None
        self.sshd: FakeSshServer | None = None
        self.host_key: paramiko.PKey = generate_key()[0]
        self.power_ons = 0
        self.died: str | None = None  # set by a test: the board stopped on its own

    def flash(self, image: Path, config: dict[str, Any]) -> None:
        """Record the flash; the flashed DUT will show a new SSH host key."""
        self.flashed.append((image, config))
        self.host_key = generate_key()[0]

    def power_on(self, deadline: float) -> None:
        """Serve the console (or fail, for a board that never boots), and SSH where asked."""
        self.power_ons += 1
        if not self.boots:
            raise HilError("the fake board does not boot")
        self._serve(self.flashed[-1][1] if self.flashed else {}, logged_in=False)

    def _serve(self, config: dict[str, Any], *, logged_in: bool) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "console.sock"
        path.unlink(missing_ok=True)
        self.console = FakeDut(path, password=self.password, logged_in=logged_in)
        if self.serves_ssh:
            keys = config.get("os", {}).get("sshKeys", [])
            self.sshd = FakeSshServer(keys, host_key=self.host_key, answer=self.answer)
            self.ssh_port = self.sshd.port

    def power_off(self, grace: float = 10.0) -> None:
        """Hang up the console and the SSH server."""
        if self.console is not None:
            self.console.stop()
            self.console = None
        if self.sshd is not None:
            self.sshd.stop()
            self.sshd = None

    def console_transport(self, timeout: float) -> UnixSocketTransport:
        """The fake console's socket."""
        assert self.console is not None
        return UnixSocketTransport(self.console.path, timeout)

    def exit_reason(self) -> str | None:
        """Why the board stopped on its own: never, unless a test says so."""
        return self.died

    def close(self) -> None:
        """Power off."""
        self.power_off()


class SnapshotBoard(FakeBoard):
    """A fake board with SSH that keeps up to `keep` snapshots, least recently used going first; a
    restore serves the saved DUT's host key and a shell already logged in, as the saved one was."""

    provides = (BootSnapshots,)

    def __init__(self, workdir: Path, *, keep: int = 3, refuses: str | None = None, **kwargs: Any) -> None:
        super().__init__(workdir, ssh=True, **kwargs)
        self.keep = keep
        self.refuses = refuses  # what QEMU would say when it cannot save a snapshot
        self.saves: list[str] = []
        self.restored: list[str] = []
        self._kept: dict[str, tuple[paramiko.PKey, dict[str, Any]]] = {}  # least recently used first

    def save_snapshot(self, key: str) -> None:
        """Keep the running DUT as `key`."""
        self.saves.append(key)
        if self.refuses or self.died:
            raise QemuError(f"QEMU could not save a snapshot of fake: {self.refuses or self.died}")
        self._kept.pop(key, None)
        self._kept[key] = (self.host_key, self.flashed[-1][1])
        while len(self._kept) > self.keep:
            del self._kept[next(iter(self._kept))]

    def has_snapshot(self, key: str) -> bool:
        """Whether `key` is kept (it becomes the most recently used)."""
        if key not in self._kept:
            return False
        self._kept[key] = self._kept.pop(key)
        return True

    def restore_snapshot(self, key: str, deadline: float) -> None:
        """Power off, then run the DUT saved as `key` again."""
        if key not in self._kept:
            raise QemuError(f"board fake keeps no snapshot {key[:12]}")
        self.power_off()
        self.restored.append(key)
        self.host_key, config = self._kept[key]
        self._serve(config, logged_in=True)
