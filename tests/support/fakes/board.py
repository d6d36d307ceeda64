"""A board with no hardware: flashing records the image, power serves a fake console (a getty, then a
real shell on a pty), so the DUT state machine runs in milliseconds. SSH is not served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hil.console.unix_socket import UnixSocketTransport
from hil.errors import HilError
from tests.support.fakes.console_dut import FakeDut


class FakeBoard:
    """Power on starts a FakeDut behind a Unix socket; `boots=False` makes power-on fail like a dead board."""

    provides: tuple[type, ...] = ()
    ssh_host = "127.0.0.1"
    ssh_port = 9  # discard: nothing answers SSH here

    def __init__(self, workdir: Path, *, password: str = "secret", boots: bool = True) -> None:
        self.workdir = workdir
        self.password = password
        self.boots = boots
        self.flashed: list[tuple[Path, dict[str, Any]]] = []
        self.console: FakeDut | None = None
        self.power_ons = 0

    def flash(self, image: Path, config: dict[str, Any]) -> None:
        """Record the flash."""
        self.flashed.append((image, config))

    def power_on(self, deadline: float) -> None:
        """Serve the console (or fail, for a board that never boots)."""
        self.power_ons += 1
        if not self.boots:
            raise HilError("the fake board does not boot")
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "console.sock"
        path.unlink(missing_ok=True)
        self.console = FakeDut(path, password=self.password)

    def power_off(self, grace: float = 10.0) -> None:
        """Hang up the console."""
        if self.console is not None:
            self.console.stop()
            self.console = None

    def console_transport(self, timeout: float) -> UnixSocketTransport:
        """The fake console's socket."""
        assert self.console is not None
        return UnixSocketTransport(self.console.path, timeout)

    def exit_reason(self) -> str | None:
        """A fake board never dies on its own."""
        return None

    def close(self) -> None:
        """Power off."""
        self.power_off()
