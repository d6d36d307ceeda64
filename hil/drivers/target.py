"""The target of a write (a card's block device, or a file standing in for one), judged by its descriptor.

A path can change between its check and its open: a card pulled, its node gone or reused by another
disk. So the kind and identity of a target are read from the opened descriptor (fstat), never from
the path alone, and a guarded target is never created.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from hil.errors import FlashError

# Raises FlashError unless an opened descriptor is the device the caller checked (CardLocator.check_node).
TargetCheck = Callable[[int], None]


@contextlib.contextmanager
def open_target(target: Path, image: Path, check: TargetCheck | None) -> Iterator[tuple[int, bool]]:
    """(fd, is_file) of a block device (opened exclusively) or a regular file that passes `check`.

    A missing target is created as a new file only when unguarded (no `check`): a card's device node that
    vanished is refused, never replaced by a file. The opened descriptor is what is judged, so a node
    swapped after its stat is caught.
    """
    try:
        kind: int | None = stat.S_IFMT(target.stat().st_mode)
    except FileNotFoundError:
        if check is not None:
            raise FlashError(
                f"refusing to flash {target}: it is gone (card pulled?); nothing written"
            ) from None
        kind = None
    if kind not in (None, stat.S_IFREG, stat.S_IFBLK):
        raise FlashError(f"refusing to flash {target}: it is neither a block device nor a regular file")
    # O_EXCL on a block device: the kernel refuses if anything has it mounted or open exclusively. On a new
    # file it refuses one that appeared meanwhile. O_CREAT only ever for a target that did not exist.
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if kind is None else 0)
    flags |= os.O_EXCL if kind != stat.S_IFREG else 0
    try:
        fd = os.open(target, flags, 0o644)
    except OSError as exc:
        reason = "it is in use (mounted?)" if exc.errno == errno.EBUSY else exc.strerror
        raise FlashError(f"refusing to flash {target}: {reason}") from exc
    try:
        opened = os.fstat(fd)
        if check is not None:
            check(fd)
        elif kind is not None and stat.S_IFMT(opened.st_mode) != kind:
            raise FlashError(f"refusing to flash {target}: it changed kind while being opened")
        if stat.S_ISREG(opened.st_mode) and os.path.samestat(opened, os.stat(image)):
            raise FlashError(f"refusing to flash {target}: it is the image itself")
        yield fd, stat.S_ISREG(opened.st_mode)
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_checked(target: Path, flags: int, check: TargetCheck | None, failing: str) -> Iterator[int]:
    """A descriptor on an existing `target` that passed `check`; FlashError beginning `failing` if not."""
    try:
        fd = os.open(target, flags | os.O_CLOEXEC)
    except OSError as exc:
        raise FlashError(f"{failing}: cannot open {target}: {exc.strerror}") from exc
    try:
        if check is not None:
            check(fd)
        yield fd
    finally:
        os.close(fd)
