"""A build's log file: every line its tools print, kept for diagnosis; its phases also go to the caller."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

from hil.errors import ImageError, ToolMissing
from hil.util.hostproc import die_with_parent


class BuildLog:
    """Timestamped lines in `path`; `phase()` lines are echoed to `echo` (the CLI, a test's log)."""

    def __init__(self, path: Path, echo: Callable[[str], None]) -> None:
        self.path = path
        self._echo = echo
        self._file = path.open("w")
        self._start = time.monotonic()

    def __enter__(self) -> BuildLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()

    def write(self, text: str) -> None:
        """Add `text` to the log file only."""
        stamp = f"[{time.monotonic() - self._start:6.1f}s]"
        self._file.write("".join(f"{stamp} {line}\n" for line in text.rstrip("\n").splitlines()))
        self._file.flush()

    def phase(self, text: str) -> None:
        """Log a step of the build, in the file and to the caller."""
        self.write(text)
        self._echo(text)

    def run(self, argv: Sequence[str], *, env: dict[str, str], name: str, limit: float = 1800.0) -> None:
        """Run a program with its output streamed into the log; its `I:` lines (Debian tools' progress)
        become phases, and a failure is one line quoting its first `E:` line."""
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace", env=env, preexec_fn=die_with_parent,
        )  # fmt: skip
        assert proc.stdout is not None
        expired = threading.Event()

        def expire() -> None:  # never hang a build on a stalled mirror
            expired.set()
            proc.kill()

        timer = threading.Timer(limit, expire)
        timer.start()
        errors: list[str] = []
        try:
            for line in proc.stdout:
                self.write(f"{name}: {line}")
                if line.startswith("I: "):
                    self._echo(f"{name}: {line[3:].strip()}")
                elif line.startswith("E: "):
                    errors.append(line[3:].strip())
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()  # interrupted while reading: the namespace takes the rest of the tree with it
            proc.wait()
        if expired.is_set():
            raise ImageError(f"{name} did not finish within {limit:.0f} s")
        if proc.returncode != 0:
            why = errors[0] if errors else f"exit status {proc.returncode}"
            raise ImageError(f"{name} failed: {why}")

    @contextlib.contextmanager
    def failures_named(self, what: str) -> Iterator[None]:
        """A failure inside becomes one ImageError line naming this log; the details go into the log."""
        try:
            yield
        except ToolMissing:
            raise
        except Exception as exc:
            self.write(traceback.format_exc())
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ImageError(f"{what} failed: {first[:300]}; build log: {self.path}") from exc

    def move_into(self, dest: Path) -> None:
        """Close the log and move it to `dest` (into the finished build)."""
        self._file.close()
        os.replace(self.path, dest)
        self.path = dest
