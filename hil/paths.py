"""Where hil keeps what it caches between runs."""

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
