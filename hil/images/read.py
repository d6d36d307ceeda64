"""OS disk images as raw byte streams: open any supported container without a temporary copy, check a
container from its own records before decoding it, and keep a decompressed copy in the cache.

What the bytes hold is read elsewhere: the partition table in hil.images.partitions, the device type in
hil.images.device_type.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import lzma
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from hil.errors import ImageError
from hil.util.paths import cache_dir

log = logging.getLogger("hil.images.read")

FORMATS = (".img", ".img.gz", ".img.xz", ".zip")
# How much of an image is read or decoded at a time.
CHUNK = 4 << 20
_STREAM_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error, zipfile.BadZipFile)


class _RawStream(Protocol):
    """What an image's decoder gives: a plain file, a GzipFile, an LZMAFile or a zip member."""

    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


class ImageStream:
    """A forward-reading raw view of an image whose decoding errors become ImageError naming the file."""

    def __init__(self, path: Path, raw: _RawStream) -> None:
        self.path = path
        self._raw = raw

    def read(self, size: int) -> bytes:
        """Up to `size` raw bytes (b"" at the end of the image)."""
        try:
            return self._raw.read(size)
        except _STREAM_ERRORS as exc:
            raise ImageError(f"image {self.path} is corrupt at byte {self.tell()}: {exc}") from exc

    def seek(self, offset: int) -> None:
        """Move to a raw offset (compressed formats decode their way forward)."""
        try:
            self._raw.seek(offset)
        except _STREAM_ERRORS as exc:
            raise ImageError(f"image {self.path} is corrupt before byte {offset}: {exc}") from exc

    def tell(self) -> int:
        """The current raw offset."""
        return self._raw.tell()


@contextlib.contextmanager
def open_image(path: Path) -> Iterator[ImageStream]:
    """Stream the raw bytes of an .img, .img.gz, .img.xz or single-image .zip, without a temporary copy."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image {path} does not exist")
    with _open_raw(path) as raw:
        yield ImageStream(path, raw)


def _open_raw(path: Path) -> contextlib.AbstractContextManager[_RawStream]:
    name = path.name
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    if name.endswith(".zip"):
        return _open_zip_member(path)
    if name.endswith(".img"):
        return open(path, "rb")
    raise ImageError(f"image {path} has an unknown format; hil takes {', '.join(FORMATS)}")


@contextlib.contextmanager
def _open_zip_member(path: Path) -> Iterator[_RawStream]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ImageError(f"image {path} is not a valid zip archive: {exc}") from exc
    with archive, archive.open(_zip_member(archive, path)) as member:
        yield member


def _zip_member(archive: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    files = [m for m in archive.infolist() if not m.is_dir()]
    images = [m for m in files if m.filename.endswith(".img")] or files
    if len(images) != 1:
        names = [m.filename for m in images] or "nothing"
        raise ImageError(f"zip {path} must hold exactly one image; it holds {names}")
    return images[0]


def check_integrity(path: Path) -> int | None:
    """Refuse a truncated or damaged image from its container's own records, without decoding it.

    Returns the raw (decompressed) size when the container records it. What is checked, per format:
    - `.img`: that it is not empty (a raw image has no records to check);
    - `.img.xz`: every stream's footer ('YZ' magic, CRC32), index (CRC32) and header, walked back from the
      end of the file, so a truncated file is refused; the index gives the raw size. Damage inside a
      block is found only while decoding (each block's own check);
    - `.zip`: the central directory at the end of the archive (a truncated archive has none), exactly one
      image member, its local header and a compression method hil can decode; the raw size is recorded.
      Damage inside the member is found only while decoding (its CRC32 at the end);
    - `.img.gz`: the gzip header only. gzip has no index: its trailer (CRC32, size modulo 4 GiB) can be
      checked only by decoding the whole stream, so truncation or damage is found only while decoding.
    An image whose raw size is recorded as zero is refused as empty.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image {path} does not exist")
    if path.stat().st_size == 0:
        raise ImageError(f"image {path} is empty (0 bytes)")
    name = path.name
    if name.endswith(".img"):
        size: int | None = path.stat().st_size
    elif name.endswith(".xz"):
        size = _xz_raw_size(path)
    elif name.endswith(".zip"):
        size = _zip_raw_size(path)
    elif name.endswith(".gz"):
        with open(path, "rb") as f:
            if f.read(3) != b"\x1f\x8b\x08":
                raise ImageError(f"image {path} is corrupt: it does not start with a gzip (deflate) header")
        size = None
    else:
        raise ImageError(f"image {path} has an unknown format; hil takes {', '.join(FORMATS)}")
    if size == 0:
        raise ImageError(f"image {path} is empty: it holds a 0-byte disk")
    return size


def _zip_raw_size(path: Path) -> int:
    try:
        with zipfile.ZipFile(path) as archive:
            member = _zip_member(archive, path)
            with archive.open(member):
                return member.file_size
    except zipfile.BadZipFile as exc:
        raise ImageError(f"image {path} is corrupt: not a complete zip archive (truncated?): {exc}") from exc
    except (NotImplementedError, RuntimeError) as exc:  # an unsupported method, or encrypted
        raise ImageError(f"image {path}: its image cannot be read from the zip: {exc}") from exc


_XZ_MAGIC = b"\xfd7zXZ\x00"


def _xz_raw_size(path: Path) -> int:
    """Walk an .xz file's streams back from its end (footer, index, header); the sum of their raw sizes."""
    total, streams, end = 0, 0, path.stat().st_size
    with open(path, "rb") as f:
        if _pread(f, 0, 6) != _XZ_MAGIC:
            raise ImageError(f"image {path} is corrupt: it does not start with an xz stream header")
        while end > 0:
            if end >= 4 and _pread(f, end - 4, 4) == bytes(4):
                # Python's lzma stops at stream padding, silently dropping any stream after it.
                raise ImageError(
                    f"image {path} has xz stream padding, which hil cannot decode; recompress it"
                )
            footer = _pread(f, end - 12, 12) if end >= 24 else b""
            if footer[10:] != b"YZ" or zlib.crc32(footer[4:10]) != int.from_bytes(footer[:4], "little"):
                where = f" before byte {end}" if streams else ""
                raise ImageError(f"image {path} is corrupt: no valid xz stream footer{where} (truncated?)")
            index_size = (int.from_bytes(footer[4:8], "little") + 1) * 4
            if index_size > end - 24:
                raise ImageError(f"image {path} is corrupt: its xz footer points before the file's start")
            records = _xz_index(_pread(f, end - 12 - index_size, index_size), path)
            start = end - 12 - index_size - sum((unpadded + 3) & ~3 for unpadded, _ in records) - 12
            header = _pread(f, start, 12) if start >= 0 else b""
            if (
                header[:6] != _XZ_MAGIC
                or header[6:8] != footer[8:10]
                or zlib.crc32(header[6:8]) != int.from_bytes(header[8:12], "little")
            ):
                raise ImageError(f"image {path} is corrupt: its xz index does not match its stream header")
            total += sum(raw for _, raw in records)
            streams, end = streams + 1, start
    return total


def _xz_index(index: bytes, path: Path) -> list[tuple[int, int]]:
    """(unpadded size, raw size) of each block an xz index lists; ImageError when the index is damaged."""
    if len(index) < 8 or index[0] != 0 or zlib.crc32(index[:-4]) != int.from_bytes(index[-4:], "little"):
        raise ImageError(f"image {path} is corrupt: its xz index is damaged")
    values, value, shift = [], 0, 0
    for at, byte in enumerate(index[1:-4], start=1):
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
            if len(values) == 2 * values[0] + 1:
                if any(index[at + 1 : -4]) or len(index) - 4 - (at + 1) > 3:
                    break
                return list(zip(values[1::2], values[2::2], strict=True))
    raise ImageError(f"image {path} is corrupt: its xz index is damaged")


def _pread(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def materialize(path: Path) -> Path:
    """A raw, decompressed copy of the image, cached by the image file's sha256 (a raw .img is itself)."""
    path = Path(path)
    if path.name.endswith(".img"):
        if not path.is_file():
            raise ImageError(f"image {path} does not exist")
        return path
    if not path.is_file():
        raise ImageError(f"image {path} does not exist")
    raw_dir = cache_dir() / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    cached = raw_dir / f"{_file_sha256(path)}.img"
    if cached.exists():
        return cached
    log.info("decompressing %s to %s", path, cached)
    with tempfile.NamedTemporaryFile(dir=raw_dir, suffix=".part", delete=False) as out:
        try:
            _copy_sparse(path, out)
            os.replace(out.name, cached)
        except BaseException:
            os.unlink(out.name)
            raise
    return cached


def _copy_sparse(path: Path, out: IO[bytes]) -> None:
    # Zero blocks become holes: the cached copy costs only the image's real data on disk.
    zeros = bytes(CHUNK)
    with open_image(path) as stream:
        while chunk := stream.read(CHUNK):
            if chunk == zeros[: len(chunk)]:
                out.seek(len(chunk), os.SEEK_CUR)
            else:
                out.write(chunk)
    out.truncate()
    out.flush()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
