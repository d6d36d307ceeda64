"""OS disk images: open any supported format as a raw byte stream, read what device type it is for."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import logging
import lzma
import os
import shutil
import struct
import subprocess
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from hil.errors import ImageError, ToolMissing
from hil.util.paths import cache_dir

log = logging.getLogger("hil.images.read")

FORMATS = (".img", ".img.gz", ".img.xz", ".zip")
SECTOR = 512
_CHUNK = 4 << 20
# A partition table (MBR or GPT with its 128 entries) lies within the first MiB of any image we take.
_HEAD = 1 << 20
_MBR_FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, 0xEF}
_GPT_FAT_TYPES = {
    uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),  # EFI system partition
    uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"),  # Microsoft basic data (FAT boot partitions)
}
_STREAM_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error, zipfile.BadZipFile)


class _RawStream(Protocol):
    """What an image's decoder gives: a plain file, a GzipFile, an LZMAFile or a zip member."""

    def read(self, size: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


@dataclass(frozen=True)
class ImageInfo:
    """What an image says about itself: the device type (slug) it is built for and its OS version."""

    device_type: str | None
    version: str | None


@dataclass(frozen=True)
class Partition:
    """One partition of a disk image, in bytes."""

    number: int
    offset: int
    size: int
    fat: bool
    uuid: str = ""  # the PARTUUID Linux shows: the GPT entry's GUID, or MBR `<disk signature>-<number>`


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


def partitions(head: bytes) -> list[Partition]:
    """The partitions described by the MBR or GPT at the start of a disk (`head` = its first MiB)."""
    if len(head) < 2 * SECTOR or head[510:512] != b"\x55\xaa":
        return []
    entries = [struct.unpack_from("<4xB3xII", head, 446 + 16 * i) for i in range(4)]
    if any(kind == 0xEE for kind, _, _ in entries):
        return _gpt_partitions(head)
    (signature,) = struct.unpack_from("<I", head, 440)
    return [
        Partition(
            i + 1, start * SECTOR, count * SECTOR, kind in _MBR_FAT_TYPES, f"{signature:08x}-{i + 1:02x}"
        )
        for i, (kind, start, count) in enumerate(entries)
        if kind and count
    ]


def _gpt_partitions(head: bytes) -> list[Partition]:
    if head[SECTOR : SECTOR + 8] != b"EFI PART":
        return []
    entries_lba, count, entry_size = struct.unpack_from("<QII", head, SECTOR + 72)
    found = []
    for i in range(count):
        at = entries_lba * SECTOR + i * entry_size
        if at + 48 > len(head):
            break
        kind = uuid.UUID(bytes_le=head[at : at + 16])
        first, last = struct.unpack_from("<QQ", head, at + 32)
        if kind.int:
            unique = str(uuid.UUID(bytes_le=head[at + 16 : at + 32]))
            size = (last - first + 1) * SECTOR
            found.append(Partition(i + 1, first * SECTOR, size, kind in _GPT_FAT_TYPES, unique))
    return found


def partition_uuids(path: Path) -> set[str]:
    """The PARTUUIDs of an image's partitions, as the OS booted from it reports them."""
    with open_image(path) as stream:
        return {p.uuid for p in partitions(stream.read(_HEAD))}


def boot_partition(head: bytes, where: Path) -> Partition:
    """The first FAT partition (the boot partition) of a disk; ImageError when there is none."""
    for partition in partitions(head):
        if partition.fat:
            return partition
    raise ImageError(f"{where} has no FAT boot partition in its partition table")


def read_info(path: Path) -> ImageInfo:
    """Device type (device-type.json's slug on the boot partition) and version (only a sidecar says it:
    the OS's own version is in os-release, see hil.images.osrelease), with `<image>.json` sidecars.

    The image's container is checked first (`check_integrity`). A sidecar fills in what the image does not
    carry; a sidecar that contradicts the image, or another sidecar, is refused rather than trusted.
    """
    path = Path(path)
    check_integrity(path)
    sources = [(str(s), _parse_manifest(s.read_bytes(), str(s))) for s in _sidecars(path) if s.is_file()]
    embedded = _embedded_info(path, sidecar=bool(sources))
    if embedded is not None:
        sources.append((f"{path}:/device-type.json", embedded))
    if not sources:
        log.info("image %s carries no device-type.json; its device type is unknown", path)
    return ImageInfo(_agreed(sources, "device_type", "device type"), _agreed(sources, "version", "version"))


def _agreed(sources: list[tuple[str, ImageInfo]], field: str, label: str) -> str | None:
    """The value the sources give for `field`; ImageError naming both sources when two of them differ."""
    said = [(where, str(value)) for where, info in sources if (value := getattr(info, field)) is not None]
    for where, value in said[1:]:
        if value != said[0][1]:
            first, first_value = said[0]
            raise ImageError(
                f"{first} says {label} {first_value}, but {where} says {value}; fix or remove the sidecar"
            )
    return said[0][1] if said else None


def _embedded_info(path: Path, *, sidecar: bool) -> ImageInfo | None:
    """device-type.json from the boot partition, or None when the image carries none."""
    with open_image(path) as stream:
        head = stream.read(_HEAD)
        if sidecar and not any(p.fat for p in partitions(head)):
            return None  # the sidecar describes an image without a boot partition to read
        boot = boot_partition(head, path)
        if path.name.endswith(".img"):
            text = _mtype(f"{path}@@{boot.offset}", path)
        else:
            text = _mtype_from_stream(stream, head, boot, path)
    if text is None:
        return None
    # device-type.json's `version` is the version of that file's format (balena's is 1), never the OS's:
    # the OS version is os-release's (hil.images.osrelease).
    return dataclasses.replace(_parse_manifest(text, f"{path}:/device-type.json"), version=None)


def _sidecars(path: Path) -> list[Path]:
    names = [path.name + ".json"]
    for suffix in (".gz", ".xz", ".zip"):
        if path.name.endswith(suffix):
            names.append(path.name[: -len(suffix)] + ".json")
    return [path.with_name(name) for name in names]


def _parse_manifest(data: bytes, where: str) -> ImageInfo:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ImageError(f"{where} must be a JSON object with 'slug' and 'version'")
    return ImageInfo(device_type=manifest.get("slug"), version=manifest.get("version"))


def _mtype_from_stream(stream: ImageStream, head: bytes, boot: Partition, path: Path) -> bytes | None:
    # Decode only up to the end of the boot partition, into a file mtools can read.
    with tempfile.NamedTemporaryFile(prefix="hil-boot-", suffix=".vfat") as part:
        if boot.offset < len(head):
            part.write(head[boot.offset : boot.offset + boot.size])
        else:
            stream.seek(boot.offset)
        while (remaining := boot.size - part.tell()) > 0:
            chunk = stream.read(min(_CHUNK, remaining))
            if not chunk:
                raise ImageError(f"image {path} ends inside its boot partition")
            part.write(chunk)
        part.flush()
        return _mtype(part.name, path)


def _mtype(source: str, image: Path) -> bytes | None:
    if shutil.which("mtype") is None:
        raise ToolMissing("mtype (package mtools) is needed to read an image's boot partition")
    done = subprocess.run(
        ["mtype", "-i", source, "::/device-type.json"],
        capture_output=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
        check=False,
    )
    if done.returncode == 0:
        return done.stdout
    if b"not found" in done.stderr:
        return None
    raise ImageError(f"image {image}: cannot read its boot partition: {done.stderr.decode().strip()}")


def check_device_type(
    info: ImageInfo, rig_device_type: str, image_path: Path, asserted: str | None = None
) -> str:
    """Refuse an image for another device type than the rig's; say where its type came from.

    An image that names no device type is flashed only when the user states one (`asserted`): hil
    cannot see for itself that it fits the board. Returns "image" or "asserted".
    """
    if asserted is not None and asserted != rig_device_type:
        raise ImageError(f"--device-type {asserted} was given, but the rig takes {rig_device_type}")
    if info.device_type is None:
        if asserted is None:
            raise ImageError(
                f"image {image_path} does not say which device type it is for (no device-type.json on its "
                f"boot partition, no {image_path.name}.json beside it); if it is built for "
                f"{rig_device_type}, say so with --device-type {rig_device_type} or `device_type:` in its "
                "OS profile"
            )
        log.info("image %s names no device type; flashing it as %s, as the user stated", image_path, asserted)
        return "asserted"
    if info.device_type != rig_device_type:
        raise ImageError(
            f"image {image_path} is built for {info.device_type}; the rig takes {rig_device_type}"
        )
    return "image"


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
    zeros = bytes(_CHUNK)
    with open_image(path) as stream:
        while chunk := stream.read(_CHUNK):
            if chunk == zeros[: len(chunk)]:
                out.seek(len(chunk), os.SEEK_CUR)
            else:
                out.write(chunk)
    out.truncate()
    out.flush()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
