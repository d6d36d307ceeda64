"""Where hil keeps what it caches between runs, and where it finds its own suites, rigs and policy."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root: $HIL_CACHE_DIR, else $XDG_CACHE_HOME/hil, else ~/.cache/hil (created)."""
    root = os.environ.get("HIL_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "hil")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def shipped(name: str) -> Path:
    """hil's own copy of a default (`suites`, `rigs`, `gate.yaml`): inside the package where a wheel puts
    it, else at the top of the source checkout hil runs from."""
    package = Path(__file__).resolve().parent.parent  # hil/, from hil/util/
    installed = package / name
    return installed if installed.exists() else package.parent / name


def project_dirs(name: str, env: str) -> list[Path]:
    """Where a project folder (`rigs`, `suites`) is looked up: $ENV (path list), ./NAME, then hil's own."""
    candidates = [Path(p) for p in os.environ.get(env, "").split(os.pathsep) if p]
    candidates += [Path.cwd() / name, shipped(name)]
    found: list[Path] = []
    for d in candidates:
        if d.is_dir() and d.resolve() not in found:
            found.append(d.resolve())
    return found
