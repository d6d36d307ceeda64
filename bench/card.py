"""A file that reads and writes at an SD card's speed: a FUSE mount whose one file is paced in user space.

This host has no block-I/O throttle, so bench/flash.py measures writers against this instead of the page
cache. Every read and write reaches the pacer (direct I/O, no page cache in between), which holds it until
the card would have finished it at its sequential speed; the bytes go to a sparse file on a fast disk.
Needs `fusepy` (`pip install fusepy`), libfuse2 and root (or fusermount).

    with PacedCard(Path("/tmp/card"), size=1 << 30, write_mb_s=21.3, read_mb_s=80):
        ...  # /tmp/card/card behaves like the card's block device
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fuse import FUSE, Operations  # type: ignore[import-untyped]

NAME = "card"


# How far a transfer may start before the channel's schedule: makes up for the pacer's own time per request
# (Python, FUSE round trips) so a long transfer runs at the card's speed, not below it.
_SLACK = 0.1


class _Pace:
    """A channel that moves `rate` bytes a second: each transfer waits for the ones before it."""

    def __init__(self, mb_s: float) -> None:
        self._rate = mb_s * 1e6
        self._free_at = 0.0
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        with self._lock:
            self._free_at = max(self._free_at, time.monotonic() - _SLACK) + size / self._rate
            done = self._free_at
        time.sleep(max(0.0, done - time.monotonic()))


class _Card(Operations):  # type: ignore[misc]
    def __init__(self, backing: Path, size: int, write_mb_s: float, read_mb_s: float) -> None:
        self._fd = os.open(backing, os.O_RDWR | os.O_CREAT)
        os.ftruncate(self._fd, size)
        self._size = size
        self._write, self._read = _Pace(write_mb_s), _Pace(read_mb_s)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == f"/{NAME}":
            now = time.time()
            return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_size": self._size,
                    "st_mtime": now, "st_atime": now, "st_ctime": now}  # fmt: skip
        raise OSError(errno.ENOENT, path)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", NAME]

    def open(self, path: str, flags: int) -> int:
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        size = max(0, min(size, self._size - offset))
        self._read.take(size)
        return os.pread(self._fd, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if offset + len(data) > self._size:
            raise OSError(errno.ENOSPC, path)
        self._write.take(len(data))
        return os.pwrite(self._fd, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        """A card keeps its size; emptying it is a discard (it then reads as zeros), as fast as a real one."""
        if length == 0:
            os.ftruncate(self._fd, 0)
            os.ftruncate(self._fd, self._size)

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        """Writes were paced as they came: nothing is left in flight."""

    def flush(self, path: str, fh: int) -> None:
        return None


class PacedCard:
    """Serve a paced card file at `mountpoint` from a process of its own (no GIL shared with the writers)."""

    def __init__(self, mountpoint: Path, *, size: int, write_mb_s: float, read_mb_s: float) -> None:
        self.mountpoint = mountpoint
        self.path = mountpoint / NAME
        self._args = [str(mountpoint), str(size), str(write_mb_s), str(read_mb_s)]
        self._server: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PacedCard:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self._server = subprocess.Popen([sys.executable, __file__, *self._args])
        deadline = time.monotonic() + 10
        while not self.path.exists():
            if time.monotonic() > deadline or self._server.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"the paced card did not mount at {self.mountpoint}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", str(self.mountpoint)], check=False, stderr=subprocess.DEVNULL)
        if self._server is not None:
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()


def serve(mountpoint: Path, size: int, write_mb_s: float, read_mb_s: float) -> None:
    """Serve the card until it is unmounted; its bytes live in a sparse file beside the mount point."""
    backing = mountpoint.with_name(mountpoint.name + ".backing")
    try:
        FUSE(_Card(backing, size, write_mb_s, read_mb_s), str(mountpoint), foreground=True, direct_io=True,
             big_writes=True, max_write=1 << 20, max_read=1 << 20)  # fmt: skip
    finally:
        backing.unlink(missing_ok=True)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
