"""What the dashboard may show of a run's files: only files inside the artifact roots `hil serve` was
given (`--artifact-root`), and of those only the run's own (what it recorded, or what lies in its
artifacts directory); read bounded, and always as plain text (an artifact never runs as a page).

Why roots: the store may be shared by a whole lab, and a run names its own artifacts directory. A run that
says `/` must not turn the dashboard into a reader of its host's files (/root/.ssh). A path is judged by
its real path (symlinks resolved), so neither `..` nor a link inside a root leads out of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from hil.console.text import TextCleaner
from hil.errors import HilError
from hil.runs.model import Run

# A console view shows at most this much; the whole file is a download away.
MAX_SHOWN = 4 << 20
NO_ROOTS = (
    "this dashboard serves no run files: no artifact root is configured "
    "(start it with `hil serve --artifact-root DIR`, e.g. the ./artifacts folder `hil run` writes into)"
)


def artifact_roots(dirs: Iterable[Path]) -> tuple[Path, ...]:
    """The folders run files may be served from, as real paths; a root that is no folder is an error."""
    roots = []
    for folder in dirs:
        real = Path(os.path.realpath(folder))
        if not real.is_dir():
            raise HilError(f"artifact root {folder} is not a folder")
        roots.append(real)
    return tuple(roots)


def inside(roots: Sequence[Path], path: Path | str) -> bool:
    """Whether `path` is absolute, has no `..`, and its real path lies inside one of `roots`."""
    path = Path(path)
    if not path.is_absolute() or ".." in path.parts:
        return False
    real = Path(os.path.realpath(path))
    return any(real.is_relative_to(root) for root in roots)


def allowed(run: Run, path: Path, roots: Sequence[Path]) -> bool:
    """Whether `path` may be shown: inside an artifact root, and one of the run's own files (under its
    artifacts or Allure results, its JUnit file, a transcript or a test's artifact), all as real paths."""
    if not inside(roots, path):
        return False
    target = Path(os.path.realpath(path))
    own = [Path(os.path.realpath(p)) for p in (run.facts.artifacts, run.facts.allure) if os.path.isabs(p)]
    named = {Path(run.junit_path), *(Path(p) for p in run.facts.transcripts)}
    named |= {Path(a) for t in run.tests for a in t.artifacts}
    named_real = {Path(os.path.realpath(p)) for p in named if p.is_absolute()}
    return target in named_real or any(target.is_relative_to(r) for r in own)


def read_text(path: Path, start: int = 0, end: int | None = None) -> str:
    """Bytes `start`..`end` of a console transcript or log, as clean text (escapes stripped), bounded."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            size = MAX_SHOWN if end is None else max(0, min(end - start, MAX_SHOWN))
            data = f.read(size)
    except OSError as exc:
        return f"({path} cannot be read: {exc.strerror})"
    return clean(data)


def clean(data: bytes) -> str:
    """Console bytes as clean text: escapes stripped, as a terminal would not show them."""
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
