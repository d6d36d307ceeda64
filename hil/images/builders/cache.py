"""Image builds in the cache: each is made under a temporary name and renamed once complete."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from hil.util.paths import cache_dir


def images_dir(cache: Path | None = None) -> Path:
    """The cache's `images` directory (created), cleared of builds whose process died."""
    images = (cache or cache_dir()) / "images"
    images.mkdir(parents=True, exist_ok=True)
    _reap_stale_builds(images)
    return images


def _reap_stale_builds(images: Path) -> None:
    """Remove the temporary directories of builds whose process is gone (killed mid-build)."""
    for tmp in images.glob(".tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.kill(int(pid), 0)
            continue
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def one_builder(final: Path) -> Iterator[bool]:
    """Hold cache entry `final`'s build lock (an flock, so it dies with its holder); yields whether the
    entry still needs building: another process (an xdist worker) may have built it while this one
    waited, and then it is used as built, never built twice."""
    lock = final.parent / f".lock-{final.name}"
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield not final.is_dir()


@contextlib.contextmanager
def building(final: Path) -> Iterator[Path]:
    """A fresh directory to build `final` in, renamed to `final` when the block completes.

    A killed build never leaves a directory that looks done, and a concurrent build of the same
    inputs that finished first wins.
    """
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        try:
            tmp.rename(final)
        except OSError:
            shutil.rmtree(tmp)  # a concurrent build of the same inputs finished first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
