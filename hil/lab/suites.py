"""The suites a run may name: the folders of test modules under the first suites/ directory found."""

from __future__ import annotations

from pathlib import Path

from hil.errors import HilError
from hil.util.paths import project_dirs


def suite_paths(names: list[str] | None) -> list[Path]:
    """The suite directories to run: the named ones, or all under the first suites/ directory found."""
    dirs = project_dirs("suites", "HIL_SUITES_DIR")
    if not dirs:
        raise HilError("no suites/ directory found: set HIL_SUITES_DIR, or reinstall hil (it ships them)")
    available = {p.name: p for p in sorted(dirs[0].iterdir()) if p.is_dir() and any(p.glob("test_*.py"))}
    if not names:
        return list(available.values())
    unknown = [n for n in names if n not in available]
    if unknown:
        raise HilError(f"unknown suite {', '.join(unknown)}; known: {', '.join(available)}")
    return [available[n] for n in names]
