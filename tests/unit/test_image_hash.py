"""An image's content hash: the sha256 of the decompressed disk, the same whatever the container, computed
once per version of the file."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import zipfile
from pathlib import Path

import pytest

from hil.errors import ImageError
from hil.images import hash as image_hash
from hil.images.hash import image_sha256


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def disk(tmp_path: Path) -> bytes:
    return os.urandom(300_000) + bytes(2 << 20) + b"end of the disk"


def test_the_same_disk_has_the_same_hash_in_every_container(tmp_path: Path, disk: bytes) -> None:
    (tmp_path / "a.img").write_bytes(disk)
    (tmp_path / "a.img.gz").write_bytes(gzip.compress(disk))
    (tmp_path / "a.img.xz").write_bytes(lzma.compress(disk))
    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("balena.img", disk)
    expected = hashlib.sha256(disk).hexdigest()
    for name in ("a.img", "a.img.gz", "a.img.xz", "a.zip"):
        assert image_sha256(tmp_path / name) == expected, name


def test_the_hash_is_cached_per_file_and_recomputed_when_the_file_changes(
    tmp_path: Path, disk: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.img"
    path.write_bytes(disk)
    first = image_sha256(path)
    opened = []
    real = image_hash.open_image
    monkeypatch.setattr(image_hash, "open_image", lambda p: opened.append(p) or real(p))
    assert image_sha256(path) == first
    assert opened == []  # answered from the cache
    stat = path.stat()
    path.write_bytes(disk[:-3] + b"END")  # same size; the mtime is even put back
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert image_sha256(path) == hashlib.sha256(disk[:-3] + b"END").hexdigest()
    assert opened == [path]


def test_a_broken_cache_entry_is_recomputed(tmp_path: Path, disk: bytes, cache: Path) -> None:
    path = tmp_path / "a.img"
    path.write_bytes(disk)
    image_sha256(path)
    (entry,) = (cache / "image-sha256").iterdir()
    entry.write_text('{"sha256": "not a hash"}')
    assert image_sha256(path) == hashlib.sha256(disk).hexdigest()


@pytest.mark.timeout(120)
def test_a_large_sparse_image_hashes_in_bounded_time(tmp_path: Path) -> None:
    path = tmp_path / "sparse.img"
    with open(path, "wb") as f:
        f.truncate(256 << 20)  # on paper; a hole on disk, as built images are
        f.seek(100 << 20)
        f.write(b"data")
    expected = hashlib.sha256()
    zeros = bytes(1 << 20)
    for mib in range(256):
        expected.update(b"data" + zeros[4:] if mib == 100 else zeros)
    assert image_sha256(path) == expected.hexdigest()


def test_a_missing_or_corrupt_image_is_an_image_error(tmp_path: Path, disk: bytes) -> None:
    with pytest.raises(ImageError, match="cannot read"):
        image_sha256(tmp_path / "missing.img")
    (tmp_path / "bad.img.xz").write_bytes(lzma.compress(disk)[:1000])
    with pytest.raises(ImageError, match="corrupt"):
        image_sha256(tmp_path / "bad.img.xz")
