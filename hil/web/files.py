"""What the dashboard may show of a run's files: only files the run recorded or that lie in its artifacts
directory, read bounded, and always as plain text (an artifact is never run as a page on the dashboard)."""

from __future__ import annotations

from pathlib import Path

from hil.console.text import TextCleaner
from hil.runs.model import Run

# A console view shows at most this much; the whole file is a download away.
MAX_SHOWN = 4 << 20


def allowed(run: Run, path: Path) -> bool:
    """Whether `path` is one of the run's own files: under its artifacts, its JUnit or Allure results."""
    target = path.resolve()
    roots = [Path(p) for p in (run.facts.artifacts, run.facts.allure) if p]
    named = {Path(run.junit_path), *(Path(p) for p in run.facts.transcripts)}
    named |= {Path(a) for t in run.tests for a in t.artifacts}
    return target in named or any(target.is_relative_to(r) for r in roots)


def read_text(path: Path, start: int = 0, end: int | None = None) -> str:
    """Bytes `start`..`end` of a console transcript or log, as clean text (escapes stripped), bounded."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            size = MAX_SHOWN if end is None else max(0, min(end - start, MAX_SHOWN))
            data = f.read(size)
    except OSError as exc:
        return f"({path} cannot be read: {exc.strerror})"
    cleaner = TextCleaner()
    return cleaner.feed(data) + cleaner.flush()


def tail(path: Path, offset: int, limit: int = 256 << 10) -> tuple[int, str]:
    """What a growing transcript gained since `offset`, up to its last complete line: (new offset, text)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            if offset > size:  # the file was replaced: start again
                offset = 0
            f.seek(offset)
            data = f.read(limit)
    except OSError:
        return offset, ""
    cut = data.rfind(b"\n") + 1 if len(data) < limit else len(data)
    cleaner = TextCleaner()
    return offset + cut, cleaner.feed(data[:cut]) + cleaner.flush()
