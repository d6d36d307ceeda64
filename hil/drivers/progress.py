"""Progress of long byte transfers: a rich bar on a terminal, periodic log lines in CI."""

from __future__ import annotations

import logging
import sys
import time
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress import Progress as RichBar

log = logging.getLogger("hil.flasher")

_UNKNOWN_TOTAL_STEP = 256 << 20


class Progress(Protocol):
    """Receives the phases of a transfer and the bytes done in each."""

    def start(self, phase: str, total: int | None) -> None:
        """A phase ("write", "verify") begins; `total` bytes when known."""
        ...

    def advance(self, nbytes: int) -> None:
        """`nbytes` more bytes of the current phase are done."""
        ...

    def finish(self) -> None:
        """The current phase is over."""
        ...


class LogProgress:
    """Logs a line about every 5 % (every 256 MiB when the total is unknown), with throughput."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._phase = ""
        self._total: int | None = None
        self._done = 0
        self._next = 0
        self._started = 0.0

    def start(self, phase: str, total: int | None) -> None:
        """Begin a phase."""
        self._phase, self._total, self._done = phase, total, 0
        self._started = time.monotonic()
        self._next = self._step()

    def advance(self, nbytes: int) -> None:
        """Count bytes; log when the next step is passed."""
        self._done += nbytes
        if self._done >= self._next:
            self._log()
            self._next = self._done + self._step()

    def finish(self) -> None:
        """Log the phase's final figures."""
        self._log()

    def _step(self) -> int:
        return max(self._total // 20, 1) if self._total else _UNKNOWN_TOTAL_STEP

    def _log(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self._done / elapsed / (1 << 20)
        share = f" ({100 * self._done // self._total}%)" if self._total else ""
        log.info("%s %s: %d MiB%s at %.0f MiB/s", self.label, self._phase, self._done >> 20, share, rate)


class TerminalProgress:
    """A rich progress bar with throughput and ETA, on stderr."""

    def __init__(self, label: str, console: Console | None = None) -> None:
        self.label = label
        self.console = console
        self._bar: RichBar | None = None
        self._task: TaskID | None = None

    def start(self, phase: str, total: int | None) -> None:
        """Draw a new bar for the phase."""
        self._bar = RichBar(
            TextColumn(f"{self.label} {phase}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(phase, total=total)

    def advance(self, nbytes: int) -> None:
        """Move the bar."""
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, nbytes)

    def finish(self) -> None:
        """Leave the finished bar on screen."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def auto_progress(label: str) -> Progress:
    """A terminal bar when stderr is a terminal, log lines otherwise (CI)."""
    return TerminalProgress(label) if sys.stderr.isatty() else LogProgress(label)
