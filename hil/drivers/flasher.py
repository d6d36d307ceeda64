"""Write an image to a card (or a file standing in for one), then read it back and verify it.

Which blocks are written:
- with a `.bmap` beside the image, only its mapped ranges (bmaptool's rule: unmapped ranges are free space
  whose old contents do not matter);
- without one, every block, except that all-zero blocks are skipped when the target is known to read as
  zeros: a regular file (hil empties it first, so its holes read as zeros) or a card the caller says was
  discarded (`zeroed=True`). Skipping zeros on a card that held older data would leave that data in place,
  so it is never done by default on a block device.

Everything that can be refused is refused before the first byte is written: the image's container
(`check_integrity`), its bmap against its contents, and the target's kind and, for a card, its identity.
A failure after that says the target is now half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from hil.drivers.card import CardLocator
from hil.drivers.progress import Progress, auto_progress
from hil.drivers.target import TargetCheck, open_checked, open_target
from hil.errors import FlashError, HilError, ImageError
from hil.images.bmap import Bmap, Extent, check_image_matches, find_bmap, parse_bmap
from hil.images.device_type import check_device_type, read_info
from hil.images.partitions import SECTOR, boot_partition
from hil.images.read import ImageStream, check_integrity, open_image

log = logging.getLogger("hil.flasher")

MIB = 1 << 20
# Zero detection granularity: fine enough to find the holes of a filesystem image, coarse enough to be cheap.
_ZERO_GRAIN = 64 * 1024
_ZEROS = bytes(_ZERO_GRAIN)
_QUEUE_DEPTH = 4

T = TypeVar("T")
Chunk = bytes | memoryview


@dataclass(frozen=True)
class FlashReport:
    """What a flash did: bytes written out of the image's size, how long it took, whether it verified."""

    bytes_written: int
    bytes_total: int
    seconds: float
    verified: bool
    bmap: Path | None


@dataclass(frozen=True)
class Written:
    """The extents a write put on the target (each with the sha256 it must read back as)."""

    extents: list[Extent]
    bytes_total: int
    bmap: Path | None


def flash(
    image: Path,
    target: Path,
    *,
    verify: bool = True,
    progress: Progress | None = None,
    block_size: int = 4 * MIB,
    zeroed: bool = False,
    target_check: TargetCheck | None = None,
    before_write: Callable[[], None] | None = None,
) -> FlashReport:
    """Write `image` to `target`, fsync, and (verify) read back every written byte and compare sha256.

    With `target_check`, the target must already exist, and every descriptor opened on it (to write, to
    read back) must pass the check first. `before_write` runs once all checks have passed, just before
    the first byte is written.
    """
    image, target = Path(image), Path(target)
    progress = progress or auto_progress(f"flash {image.name}")
    started = time.monotonic()
    written = write_image(
        image, target, progress=progress, block_size=block_size, zeroed=zeroed,
        target_check=target_check, before_write=before_write,
    )  # fmt: skip
    if verify:
        verify_written(
            image, target, written, progress=progress, block_size=block_size, target_check=target_check
        )
    report = FlashReport(
        bytes_written=sum(e.length for e in written.extents),
        bytes_total=written.bytes_total,
        seconds=time.monotonic() - started,
        verified=verify,
        bmap=written.bmap,
    )
    log.info(
        "flashed %s to %s: %d of %d bytes written in %.1f s%s",
        image,
        target,
        report.bytes_written,
        report.bytes_total,
        report.seconds,
        ", verified" if verify else "",
    )
    return report


def flash_card(
    image: Path, card: CardLocator, device: Path, *, max_bytes: int, device_type: str, **options: Any
) -> FlashReport:
    """The guarded path for physical rigs: refuse the wrong image or the wrong disk, then flash.

    The checked card is pinned: each descriptor the flasher opens must be the block device whose identity
    was checked, so a card pulled, or a node replaced, after the check gets nothing more written.
    """
    image = Path(image)
    info = read_info(image)
    # An image built for another board is refused here too; one that names no type was let through by the
    # caller only on the user's word (Dut.flash and `--device-type`), which this driver cannot second-guess.
    check_device_type(info, device_type, image, asserted=device_type if info.device_type is None else None)
    with open_image(image) as stream:
        # config.json goes onto the boot partition once the image is written: refuse a disk without one now.
        boot_partition(stream.read(MIB), image)
    checked = card.check_writable(Path(device), max_bytes)
    return flash(image, checked.device, target_check=lambda fd: card.check_node(checked, fd), **options)


def write_image(
    image: Path,
    target: Path,
    *,
    progress: Progress,
    block_size: int = 4 * MIB,
    zeroed: bool = False,
    target_check: TargetCheck | None = None,
    before_write: Callable[[], None] | None = None,
) -> Written:
    """Stream the image's blocks (bmap-mapped, or all but known-zero ones) to the target, then fsync.

    Whatever can be refused (the image's container and bmap, the target's kind and identity) is refused
    before the first byte is written; a failure after that says the target is now half-written.
    """
    size, bmap = _check_image(image, progress)
    with open_target(target, image, target_check) as (fd, is_file), open_image(image) as stream:
        if before_write is not None:
            before_write()
        try:
            if is_file:
                # An emptied file reads as zeros everywhere, like a discarded card of the same size.
                old_size = os.fstat(fd).st_size
                os.ftruncate(fd, 0)
                os.ftruncate(fd, old_size)
            skip_zeros = is_file or zeroed
            extents: list[Extent] = []
            if bmap:
                rule, source = f"mapped ranges of {bmap.path.name}", _mapped(stream, bmap, block_size)
            else:
                rule = "skipping zero blocks" if skip_zeros else "all blocks"
                source = _nonzero(stream, block_size, skip_zeros, extents)
            log.info("writing %s to %s (%s)", image, target, rule)
            progress.start("write", bmap.mapped_bytes if bmap else size)
            for offset, data, consumed in _in_background(source):
                if data:
                    _write_all(fd, data, offset, target)
                    # Start writeback now, so the final fsync does not wait for the whole image.
                    os.posix_fadvise(fd, offset, len(data), os.POSIX_FADV_DONTNEED)
                progress.advance(consumed)
            progress.finish()
            end = bmap.image_size if bmap else stream.tell()
            if size is not None and end != size:
                raise ImageError(f"image {image} decoded to {end} bytes; its container records {size}")
            if is_file and os.fstat(fd).st_size < end:
                os.ftruncate(fd, end)
            os.fsync(fd)
        except (HilError, OSError) as exc:
            raise FlashError(f"{exc}; {target} is now half-written: flash it again") from exc
    return Written(
        extents=list(bmap.extents) if bmap else extents, bytes_total=end, bmap=bmap.path if bmap else None
    )


def _check_image(image: Path, progress: Progress) -> tuple[int | None, Bmap | None]:
    """The image's raw size (when known) and bmap, once both are checked; ImageError when either is bad."""
    size = check_integrity(image)
    if size is None:
        with open_image(image) as stream:
            if not stream.read(SECTOR):
                raise ImageError(f"image {image} is empty: it decodes to 0 bytes")
    found = find_bmap(image)
    if found is None:
        return size, None
    bmap = parse_bmap(found)
    progress.start("check", bmap.mapped_bytes)
    check_image_matches(bmap, image, size, progress.advance)
    progress.finish()
    return size, bmap


def verify_written(
    image: Path,
    target: Path,
    written: Written,
    *,
    progress: Progress,
    block_size: int = 4 * MIB,
    target_check: TargetCheck | None = None,
) -> None:
    """Read back every written extent from the medium (not the page cache) and compare its sha256."""
    with open_checked(target, os.O_RDONLY, target_check, "verify failed") as fd:
        # Drop cached pages so the read-back comes from the card itself.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        progress.start("verify", sum(e.length for e in written.extents))
        digest, checked = hashlib.sha256(), 0
        for index, data, last in _in_background(_read_back(fd, written.extents, block_size)):
            digest.update(data)
            progress.advance(len(data))
            if last:
                extent = written.extents[index]
                if extent.sha256 and digest.hexdigest() != extent.sha256:
                    _raise_mismatch(image, target, fd, extent, written.bmap)
                digest, checked = hashlib.sha256(), checked + 1
        progress.finish()
    log.info("verified %s on %s: %d extents match", image, target, checked)


def _read_back(fd: int, extents: list[Extent], block_size: int) -> Iterator[tuple[int, bytes, bool]]:
    for index, extent in enumerate(extents):
        done = 0
        while done < extent.length:
            size = min(block_size, extent.length - done)
            data = os.pread(fd, size, extent.offset + done)
            if len(data) != size:
                raise FlashError(
                    f"verify failed at offset {extent.offset + done + len(data)}: target ends early"
                )
            done += size
            yield index, data, done == extent.length


def _raise_mismatch(image: Path, target: Path, fd: int, extent: Extent, bmap: Path | None) -> None:
    """Tell a bad write (the target differs from the image) from an image that changed or lies in its bmap."""
    with open_image(image) as stream:
        stream.seek(extent.offset)
        done = 0
        while done < extent.length:
            want = stream.read(min(MIB, extent.length - done))
            got = os.pread(fd, len(want), extent.offset + done)
            if want != got:
                pairs = enumerate(zip(want, got, strict=False))
                first = next((i for i, (a, b) in pairs if a != b), len(got))
                raise FlashError(
                    f"verify failed at offset {extent.offset + done + first}: {target} does not hold "
                    f"what was written from {image}"
                )
            done += len(want)
    reference = f"its bmap {bmap.name}" if bmap else "what was read from it while writing (did it change?)"
    where = f"bytes {extent.offset}+{extent.length}"
    raise ImageError(f"image {image} is corrupt: {where} do not match {reference}")


def _mapped(stream: ImageStream, bmap: Bmap, block_size: int) -> Iterator[tuple[int, Chunk, int]]:
    for extent in bmap.extents:
        stream.seek(extent.offset)
        done = 0
        while done < extent.length:
            data = stream.read(min(block_size, extent.length - done))
            if not data:
                raise ImageError(f"image {stream.path} ends at {extent.offset + done}, inside a mapped range")
            yield extent.offset + done, data, len(data)
            done += len(data)


def _nonzero(
    stream: ImageStream, block_size: int, skip_zeros: bool, extents: list[Extent]
) -> Iterator[tuple[int, Chunk, int]]:
    """(offset, run, raw bytes consumed) for the image's runs of data; each run is recorded as an extent."""
    offset = 0
    while data := stream.read(block_size):
        for start, end in _data_runs(data) if skip_zeros else [(0, len(data))]:
            run = memoryview(data)[start:end]
            extents.append(Extent(offset + start, len(run), hashlib.sha256(run).hexdigest()))
            yield offset + start, run, 0
        yield offset + len(data), b"", len(data)
        offset += len(data)


def _data_runs(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of the runs of `data` that are not all-zero, at _ZERO_GRAIN granularity."""
    runs: list[tuple[int, int]] = []
    for start in range(0, len(data), _ZERO_GRAIN):
        end = min(start + _ZERO_GRAIN, len(data))
        # bytes.startswith compares with memcmp; a memoryview comparison goes element by element.
        if data.startswith(_ZEROS[: end - start], start):
            continue
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


# What the producer thread hands over: an item, the end of the items, or what it raised.
_Slot = tuple[Literal["item"], T] | tuple[Literal["end"], None] | tuple[Literal["error"], BaseException]


def _in_background(items: Iterator[T]) -> Iterator[T]:
    """Run a producer in a thread, a few items ahead, so reading and hashing overlap writing."""
    slots: queue.Queue[_Slot[T]] = queue.Queue(maxsize=_QUEUE_DEPTH)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    with contextlib.suppress(queue.Full):
                        slots.put(("item", item), timeout=0.1)
                        break
                if stop.is_set():
                    return
            slots.put(("end", None))
        except BaseException as exc:
            slots.put(("error", exc))

    worker = threading.Thread(target=produce, name="hil-flash-io", daemon=True)
    worker.start()
    try:
        while True:
            slot = slots.get()
            if slot[0] == "end":
                return
            if slot[0] == "error":
                raise slot[1]
            yield slot[1]
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                slots.get_nowait()
        worker.join(timeout=10)


def _write_all(fd: int, data: Chunk, offset: int, target: Path) -> None:
    view = memoryview(data)
    while view:
        try:
            count = os.pwrite(fd, view, offset)
        except OSError as exc:
            raise FlashError(f"writing {target} failed at offset {offset}: {exc.strerror}") from exc
        view, offset = view[count:], offset + count
