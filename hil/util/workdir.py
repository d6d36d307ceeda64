"""Temporary board directories (overlays, sockets, firmware vars) that never outlive their owner."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("hil.util.workdir")
_PREFIX = "hil-board-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def workdir_root() -> Path:
    """Where board directories go: $HIL_WORKDIR_ROOT, else the system temp dir. Keep it short: the
    console and QMP sockets live there, and a Unix socket path must stay under 108 bytes."""
    return Path(os.environ.get("HIL_WORKDIR_ROOT") or tempfile.gettempdir())


def sweep(root: Path | None = None) -> list[Path]:
    """Remove board directories left by hil processes that died without cleaning up (SIGKILL)."""
    removed = []
    for path in (root or workdir_root()).glob(f"{_PREFIX}*"):
        try:
            owner = int((path / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if not _alive(owner):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            log.info("removed %s left by dead process %d", path, owner)
    return removed


def make_workdir(name: str, root: Path | None = None) -> Path:
    """A fresh directory for one board, stamped with our pid so a later run can sweep it."""
    root = root or workdir_root()
    root.mkdir(parents=True, exist_ok=True)
    sweep(root)
    path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{name}-", dir=root))
    (path / "owner.pid").write_text(str(os.getpid()))
    return path
