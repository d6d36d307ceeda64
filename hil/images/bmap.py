"""Block maps (bmap-tools' XML format): which byte ranges of an image hold data, with their sha256."""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ImageError
from hil.images.read import open_image

_COMPRESSED_SUFFIXES = (".gz", ".xz", ".zip")
_CHUNK = 4 << 20


@dataclass(frozen=True)
class Extent:
    """One mapped range of an image: `length` bytes at `offset`, and the sha256 they must have."""

    offset: int
    length: int
    sha256: str | None


@dataclass(frozen=True)
class Bmap:
    """A parsed block map: the image size and its mapped extents, in ascending order."""

    path: Path
    image_size: int
    extents: tuple[Extent, ...]

    @property
    def mapped_bytes(self) -> int:
        """How many bytes the map says must be written."""
        return sum(extent.length for extent in self.extents)


def find_bmap(image: Path) -> Path | None:
    """The `.bmap` beside an image (`x.img.bmap`, `x.img.gz.bmap`, or `x.bmap`), as bmaptool looks for it."""
    names = [image.name + ".bmap"]
    raw_name = image.name
    if raw_name.endswith(_COMPRESSED_SUFFIXES):
        raw_name = raw_name.rsplit(".", 1)[0]
        names.append(raw_name + ".bmap")
    if raw_name.endswith(".img"):
        names.append(raw_name[: -len(".img")] + ".bmap")
    for name in names:
        candidate = image.with_name(name)
        if candidate.is_file():
            return candidate
    return None


def parse_bmap(path: Path) -> Bmap:
    """Parse and self-check a bmap file (format 2.x, sha256); ImageError names the file and the fault."""
    try:
        text = path.read_text()
        root = ET.fromstring(text)
    except (OSError, ET.ParseError) as exc:
        raise ImageError(f"bmap {path} is unreadable: {exc}") from exc
    version = root.get("version", "")
    if root.tag != "bmap" or not version.startswith("2."):
        raise ImageError(f"bmap {path} has format version {version!r}; hil reads version 2.x")
    try:
        image_size = int(_field(root, "ImageSize", path))
        block_size = int(_field(root, "BlockSize", path))
        checksum_type = _field(root, "ChecksumType", path)
        if checksum_type != "sha256":
            raise ImageError(f"bmap {path} uses checksum {checksum_type!r}; hil checks sha256 only")
        _check_self_checksum(text, _field(root, "BmapFileChecksum", path), path)
        extents = tuple(_extent(r, block_size, image_size) for r in root.iterfind("BlockMap/Range"))
    except ValueError as exc:
        raise ImageError(f"bmap {path} has a malformed field: {exc}") from exc
    return Bmap(path=path, image_size=image_size, extents=extents)


def _field(root: ET.Element, name: str, path: Path) -> str:
    node = root.find(name)
    if node is None or not (node.text or "").strip():
        raise ImageError(f"bmap {path} has no <{name}>")
    return (node.text or "").strip()


def _extent(node: ET.Element, block_size: int, image_size: int) -> Extent:
    first, _, last = (node.text or "").strip().partition("-")
    start = int(first) * block_size
    end = min((int(last or first) + 1) * block_size, image_size)
    return Extent(offset=start, length=end - start, sha256=node.get("chksum"))


def _check_self_checksum(text: str, expected: str, path: Path) -> None:
    # bmaptool hashes the file with its own checksum field replaced by zeros.
    zeroed = re.sub(re.escape(expected), "0" * len(expected), text, count=1)
    if hashlib.sha256(zeroed.encode()).hexdigest() != expected:
        raise ImageError(f"bmap {path} is corrupt: its BmapFileChecksum does not match its contents")


def check_image_matches(
    bmap: Bmap, image: Path, raw_size: int | None, advance: Callable[[int], None] = lambda _: None
) -> None:
    """Refuse an image its bmap does not describe: another size, or a mapped range whose sha256 differs.

    Reads every mapped range (`advance` counts the bytes), so a wrong image or bmap is refused before
    anything is written. When the image's container does not record its raw size (gzip), the stream is
    decoded to its end, which also checks its CRC32.
    """
    if raw_size is not None:
        _check_size(bmap, image, raw_size)
    with open_image(image) as stream:
        for extent in bmap.extents:
            stream.seek(extent.offset)
            digest, done = hashlib.sha256(), 0
            while done < extent.length:
                data = stream.read(min(_CHUNK, extent.length - done))
                if not data:
                    raise ImageError(
                        f"image {image} ends at byte {extent.offset + done}, inside a range its bmap "
                        f"{bmap.path.name} maps"
                    )
                digest.update(data)
                done += len(data)
                advance(len(data))
            if extent.sha256 and digest.hexdigest() != extent.sha256:
                raise ImageError(
                    f"image {image} is corrupt: bytes {extent.offset}+{extent.length} do not match "
                    f"its bmap {bmap.path.name}"
                )
        if raw_size is None:
            while stream.read(_CHUNK):
                pass
            _check_size(bmap, image, stream.tell())


def _check_size(bmap: Bmap, image: Path, raw_size: int) -> None:
    if raw_size != bmap.image_size:
        raise ImageError(
            f"bmap {bmap.path} describes a {bmap.image_size}-byte image; image {image} holds {raw_size} bytes"
        )
