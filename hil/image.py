"""OS disk images: open any supported format as a raw byte stream, read what device type it is for."""

from __future__ import annotations

import contextlib
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
from typing import BinaryIO

from hil.errors import ImageError, ToolMissing
from hil.paths import cache_dir

log = logging.getLogger("hil.image")

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


class ImageStream:
    """A forward-reading raw view of an image whose decoding errors become ImageError naming the file."""

    def __init__(self, path: Path, raw: BinaryIO) -> None:
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


def _open_raw(path: Path) -> contextlib.AbstractContextManager[BinaryIO]:
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
def _open_zip_member(path: Path) -> Iterator[BinaryIO]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ImageError(f"image {path} is not a valid zip archive: {exc}") from exc
    with archive, archive.open(_zip_member(archive, path)) as member:
        yield member  # type: ignore[misc]


def _zip_member(archive: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    files = [m for m in archive.infolist() if not m.is_dir()]
    images = [m for m in files if m.filename.endswith(".img")] or files
    if len(images) != 1:
        names = [m.filename for m in images] or "nothing"
        raise ImageError(f"zip {path} must hold exactly one image; it holds {names}")
    return images[0]


def raw_size(path: Path) -> int | None:
    """The decompressed size of an image when it is known without decoding it (.img, .zip), else None."""
    if path.name.endswith(".img"):
        return path.stat().st_size
    if path.name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                return _zip_member(archive, path).file_size
        except zipfile.BadZipFile as exc:
            raise ImageError(f"image {path} is not a valid zip archive: {exc}") from exc
    return None


def partitions(head: bytes) -> list[Partition]:
    """The partitions described by the MBR or GPT at the start of a disk (`head` = its first MiB)."""
    if len(head) < 2 * SECTOR or head[510:512] != b"\x55\xaa":
        return []
    entries = [struct.unpack_from("<4xB3xII", head, 446 + 16 * i) for i in range(4)]
    if any(kind == 0xEE for kind, _, _ in entries):
        return _gpt_partitions(head)
    return [
        Partition(i + 1, start * SECTOR, count * SECTOR, kind in _MBR_FAT_TYPES)
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
            found.append(
                Partition(i + 1, first * SECTOR, (last - first + 1) * SECTOR, kind in _GPT_FAT_TYPES)
            )
    return found


def boot_partition(head: bytes, where: Path) -> Partition:
    """The first FAT partition (the boot partition) of a disk; ImageError when there is none."""
    for partition in partitions(head):
        if partition.fat:
            return partition
    raise ImageError(f"{where} has no FAT boot partition in its partition table")


def read_info(path: Path) -> ImageInfo:
    """Device type and version: a `<image>.json` sidecar, else device-type.json on the boot partition."""
    path = Path(path)
    for sidecar in _sidecars(path):
        if sidecar.is_file():
            return _parse_manifest(sidecar.read_bytes(), str(sidecar))
    with open_image(path) as stream:
        head = stream.read(_HEAD)
        boot = boot_partition(head, path)
        if path.name.endswith(".img"):
            text = _mtype(f"{path}@@{boot.offset}", path)
        else:
            text = _mtype_from_stream(stream, head, boot, path)
    if text is None:
        log.info("image %s carries no device-type.json; its device type is unknown", path)
        return ImageInfo(device_type=None, version=None)
    return _parse_manifest(text, f"{path}:/device-type.json")


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


def check_device_type(info: ImageInfo, rig_device_type: str, image_path: Path) -> None:
    """Refuse an image built for another device type than the rig's (an unknown type is let through)."""
    if info.device_type is None:
        log.warning(
            "image %s does not say its device type; flashing it to a %s rig", image_path, rig_device_type
        )
        return
    if info.device_type != rig_device_type:
        raise ImageError(
            f"image {image_path} is built for {info.device_type}; the rig takes {rig_device_type}"
        )


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


def _copy_sparse(path: Path, out: BinaryIO) -> None:
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
