"""A server process owned by the rig: started in its own directory, dies with hil (even by SIGKILL), stopped
in order."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from hil.errors import HilError
from hil.util.hostproc import GroupWatchdog, die_with_parent, terminate

log = logging.getLogger("hil.services")


class ServerProcess:
    """One server process, its output in `log_file`; `ready()` says when it answers."""

    def __init__(self, name: str, command: list[str], log_file: Path) -> None:
        self.name = name
        self.command = command
        self.log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None
        self._group: GroupWatchdog | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self, ready: Callable[[], bool], timeout: float = 10.0) -> None:
        """Start the server and wait until `ready()` is true; a server that dies or never answers is named."""
        self._group = GroupWatchdog()
        try:
            with self.log_file.open("ab") as out:
                # Its own group, not hil's: Ctrl-C reaches hil, which stops the server in order.
                self._proc = subprocess.Popen(
                    self.command, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                    process_group=self._group.pgid, preexec_fn=die_with_parent,
                )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        deadline = time.monotonic() + timeout
        while not ready():
            if self._proc.poll() is not None:
                failure = f"{self.name} exited at start ({self._proc.returncode}): {self.tail()}"
                self.stop()
                raise HilError(failure)
            if time.monotonic() > deadline:
                self.stop()
                raise HilError(f"{self.name} did not answer within {timeout:.0f} s: {self.tail()}")
            time.sleep(0.05)
        log.info("%s ready (pid %d)", self.name, self._proc.pid)

    def signal(self, sig: signal.Signals) -> None:
        """Send a signal to the running server."""
        if self.pid is None:
            raise HilError(f"{self.name} is not running: {self.tail()}")
        os.kill(self.pid, sig)

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the server (it is resumed first, in case it was paused), then kill it if it lingers,
        and with it anything it left in its process group."""
        proc, self._proc = self._proc, None
        group, self._group = self._group, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            terminate(proc, grace)
        if group is not None:
            group.close()

    def tail(self, lines: int = 5) -> str:
        """The last lines the server logged, on one line."""
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(nothing logged)"
