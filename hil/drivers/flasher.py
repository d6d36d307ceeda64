"""Write an image to a card (or a file standing in for one), then read it back and verify it.

Which blocks are written:
- with a `.bmap` beside the image, only its mapped ranges (bmaptool's rule: unmapped ranges are free space
  whose old contents do not matter);
- without one, every block, except that all-zero blocks are skipped when the target is known to read as
  zeros: a regular file (hil empties it first, so its holes read as zeros) or a card the caller says was
  discarded (`zeroed=True`). Skipping zeros on a card that held older data would leave that data in place,
  so it is never done by default on a block device.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import queue
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hil.bmap import Bmap, Extent, find_bmap, parse_bmap
from hil.drivers.card import CardLocator
from hil.drivers.progress import Progress, auto_progress
from hil.errors import FlashError, ImageError, ToolMissing
from hil.image import ImageStream, boot_partition, check_device_type, open_image, raw_size, read_info

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
) -> FlashReport:
    """Write `image` to `target`, fsync, and (verify) read back every written byte and compare sha256."""
    image, target = Path(image), Path(target)
    progress = progress or auto_progress(f"flash {image.name}")
    started = time.monotonic()
    written = write_image(image, target, progress=progress, block_size=block_size, zeroed=zeroed)
    if verify:
        verify_written(image, target, written, progress=progress, block_size=block_size)
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
    """The guarded path for physical rigs: refuse the wrong image or the wrong disk, then flash."""
    check_device_type(read_info(Path(image)), device_type, Path(image))
    checked = card.check_writable(Path(device), max_bytes)
    return flash(image, checked.device, **options)


def write_image(
    image: Path, target: Path, *, progress: Progress, block_size: int = 4 * MIB, zeroed: bool = False
) -> Written:
    """Stream the image's blocks (bmap-mapped, or all but known-zero ones) to the target, then fsync."""
    bmap_path = find_bmap(image)
    bmap = parse_bmap(bmap_path) if bmap_path else None
    with _open_target(target, image) as (fd, is_file), open_image(image) as stream:
        skip_zeros = is_file or zeroed
        extents: list[Extent] = []
        if bmap:
            rule, source = f"mapped ranges of {bmap.path.name}", _mapped(stream, bmap, block_size)
        else:
            rule = "skipping zero blocks" if skip_zeros else "all blocks"
            source = _nonzero(stream, block_size, skip_zeros, extents)
        log.info("writing %s to %s (%s)", image, target, rule)
        progress.start("write", bmap.mapped_bytes if bmap else raw_size(image))
        for offset, data, consumed in _in_background(source):
            if data:
                _write_all(fd, data, offset, target)
                # Start writeback now, so the final fsync does not wait for the whole image.
                os.posix_fadvise(fd, offset, len(data), os.POSIX_FADV_DONTNEED)
            progress.advance(consumed)
        progress.finish()
        end = bmap.image_size if bmap else stream.tell()
        if is_file and os.fstat(fd).st_size < end:
            os.ftruncate(fd, end)
        os.fsync(fd)
    return Written(extents=list(bmap.extents) if bmap else extents, bytes_total=end, bmap=bmap_path)


def verify_written(
    image: Path, target: Path, written: Written, *, progress: Progress, block_size: int = 4 * MIB
) -> None:
    """Read back every written extent from the medium (not the page cache) and compare its sha256."""
    fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
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
                    _raise_mismatch(image, target, extent, written.bmap)
                digest, checked = hashlib.sha256(), checked + 1
        progress.finish()
    finally:
        os.close(fd)
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


def _raise_mismatch(image: Path, target: Path, extent: Extent, bmap: Path | None) -> None:
    """Tell a bad write (the target differs from the image) from an image that changed or lies in its bmap."""
    with open_image(image) as stream, open(target, "rb") as disk:
        stream.seek(extent.offset)
        disk.seek(extent.offset)
        done = 0
        while done < extent.length:
            want = stream.read(min(MIB, extent.length - done))
            got = disk.read(len(want))
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


def _in_background(items: Iterator[T]) -> Iterator[T]:
    """Run a producer in a thread, a few items ahead, so reading and hashing overlap writing."""
    slots: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=_QUEUE_DEPTH)
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
            kind, value = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]
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


@contextlib.contextmanager
def _open_target(target: Path, image: Path) -> Iterator[tuple[int, bool]]:
    """(fd, is_file): a regular file is emptied first; a block device is opened exclusively."""
    mode = target.stat().st_mode if target.exists() else stat.S_IFREG
    if stat.S_ISREG(mode) and target.exists() and os.path.samefile(image, target):
        raise FlashError(f"refusing to flash {target}: it is the image itself")
    if stat.S_ISREG(mode):
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        size = os.fstat(fd).st_size
        # An emptied file reads as zeros everywhere, like a discarded card of the same size.
        os.ftruncate(fd, 0)
        os.ftruncate(fd, size)
    elif stat.S_ISBLK(mode):
        try:
            # O_EXCL on a block device: the kernel refuses if anything has it mounted or open exclusively.
            fd = os.open(target, os.O_RDWR | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            reason = "it is in use (mounted?)" if exc.errno == errno.EBUSY else exc.strerror
            raise FlashError(f"refusing to flash {target}: {reason}") from exc
    else:
        raise FlashError(f"refusing to flash {target}: it is neither a block device nor a regular file")
    try:
        yield fd, stat.S_ISREG(mode)
    finally:
        os.close(fd)


def write_config_json(target_or_image: Path, config: dict) -> None:
    """Write `config.json` into the FAT boot partition of a raw image or a flashed card (with mtools)."""
    target = Path(target_or_image)
    with open(target, "rb") as disk:
        boot = boot_partition(disk.read(MIB), target)
    if shutil.which("mcopy") is None:
        raise ToolMissing("mcopy (package mtools) is needed to write config.json")
    with tempfile.NamedTemporaryFile("w", suffix=".json") as staged:
        json.dump(config, staged, indent=2)
        staged.flush()
        done = subprocess.run(
            ["mcopy", "-o", "-i", f"{target}@@{boot.offset}", staged.name, "::/config.json"],
            capture_output=True,
            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
            check=False,
        )
    if done.returncode != 0:
        raise FlashError(f"writing config.json to {target} failed: {done.stderr.decode().strip()}")
    _sync(target)
    log.info("wrote config.json (%d keys) to the boot partition of %s", len(config), target)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
