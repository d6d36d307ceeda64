"""An image's content hash: the sha256 of its decompressed disk, the same for .img, .gz, .xz and .zip.

Results name the image they are about by this hash, and a release names the image it ships by it, so the
gate can tell evidence about this image from evidence about any other. Hashing streams the image in large
chunks (no temporary copy; the holes of a sparse raw image read as zeros at memory speed) and the answer
is cached per file, keyed by everything that changes when the file does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from hil.errors import ImageError
from hil.images.read import open_image
from hil.util.paths import cache_dir

_CHUNK = 16 << 20
SHA256 = re.compile(r"[0-9a-f]{64}")


def image_sha256(path: Path) -> str:
    """The sha256 of the disk `path` holds, decompressed; computed once per version of the file."""
    path = Path(path)
    key = _key(path)
    entry = cache_dir() / "image-sha256" / f"{hashlib.sha256(json.dumps(key).encode()).hexdigest()}.json"
    cached = _read(entry, key)
    if cached:
        return cached
    digest = hashlib.sha256()
    with open_image(path) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    _write(entry, {"key": key, "sha256": digest.hexdigest()})
    return digest.hexdigest()


def _key(path: Path) -> dict[str, object]:
    """What identifies one version of the file; ctime too, since a rewrite can restore the mtime."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ImageError(f"image {path}: cannot read ({exc.strerror})") from None
    return {
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
        "device": st.st_dev,
    }


def _read(entry: Path, key: dict[str, object]) -> str | None:
    try:
        data = json.loads(entry.read_text())
    except (OSError, ValueError):
        return None
    digest = data.get("sha256") if isinstance(data, dict) else None
    if data.get("key") != key or not isinstance(digest, str) or not SHA256.fullmatch(digest):
        return None
    return digest


def _write(entry: Path, data: dict[str, object]) -> None:
    # Atomic, so parallel sessions (xdist workers) never read half an entry; a cache that cannot be
    # written only costs the next run another hash.
    with contextlib.suppress(OSError):
        entry.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=entry.parent, suffix=".part", delete=False) as out:
            json.dump(data, out)
        try:
            os.replace(out.name, entry)
        finally:
            Path(out.name).unlink(missing_ok=True)
