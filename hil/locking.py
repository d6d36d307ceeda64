"""Rig leases: one holder per rig, held by an OS file lock so the lease dies with its holder."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from hil.errors import LeaseError
from hil.paths import cache_dir

log = logging.getLogger("hil.lease")

_POLL = 0.1


@dataclass(frozen=True)
class Holder:
    """Who holds a rig: host, process id, and since when (UTC)."""

    host: str
    pid: int
    since: datetime

    def __str__(self) -> str:
        return f"{self.host}:{self.pid} since {self.since.isoformat(timespec='seconds')}"


def lease_dir() -> Path:
    """Where lease lock files live: <cache>/leases."""
    return cache_dir() / "leases"


class Lease:
    """The right to use one rig: a `flock` on `<lock_dir>/<rig>.lock`, freed when its holder dies."""

    def __init__(self, rig_name: str, lock_dir: Path | None = None) -> None:
        self.rig_name = rig_name
        self.lock_dir = Path(lock_dir) if lock_dir else lease_dir()
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        """The lock file."""
        return self.lock_dir / f"{self.rig_name}.lock"

    @property
    def held(self) -> bool:
        """Whether this object holds the lease."""
        return self._fd is not None

    def acquire(self, wait: float | None = None) -> Lease:
        """Take the lease; if another holder has it, LeaseError at once, or after waiting `wait` seconds."""
        if self._fd is not None:
            return self
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC: a child such as QEMU must not keep the lock alive after its parent died.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + (wait or 0)
        while not _try_lock(fd, fcntl.LOCK_EX):
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LeaseError(f"rig {self.rig_name} is leased by {holder(self.rig_name, self.lock_dir)}")
            time.sleep(_POLL)
        record = {"host": socket.gethostname(), "pid": os.getpid(), "since": _now().isoformat()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        log.info("leased rig %s", self.rig_name)
        return self

    def release(self) -> None:
        """Give the lease back (idempotent)."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None
        log.info("released rig %s", self.rig_name)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def holder(rig_name: str, lock_dir: Path | None = None) -> Holder | None:
    """Who holds the rig now, or None when it is free."""
    path = (Path(lock_dir) if lock_dir else lease_dir()) / f"{rig_name}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _parse(os.pread(fd, 4096, 0))
    finally:
        os.close(fd)


def _parse(data: bytes) -> Holder:
    try:
        record = json.loads(data)
        return Holder(record["host"], int(record["pid"]), datetime.fromisoformat(record["since"]))
    except (ValueError, KeyError, TypeError):
        # The holder has locked but not yet written its name.
        return Holder("unknown", 0, _now())


def _try_lock(fd: int, kind: int) -> bool:
    with contextlib.suppress(BlockingIOError):
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    return False


def _now() -> datetime:
    return datetime.now(UTC)
