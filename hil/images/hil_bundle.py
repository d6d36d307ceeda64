"""hil's own update bundles: a tar of manifest.json and the gzipped root filesystem, as hostapp-update
takes them. Written by the image builders, taken apart and put back together (a changed root, the same
manifest) by hil faults, and copied broken one way for the update suite's refusal tests. (What a bundle of
any format hil understands says of itself is hil.images.bundles.)"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

from hil.errors import ImageError
from hil.images.bundles import MANIFEST, read_manifest

ROOTFS = "rootfs.img.gz"
_CHUNK = 1024 * 1024


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes | Path) -> None:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    if isinstance(data, Path):
        info.size = data.stat().st_size
        with data.open("rb") as f:
            tar.addfile(info, f)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _write(out: Path, manifest: dict, rootfs_gz: Path) -> None:
    # USTAR, manifest first: busybox tar on the DUT reads it without scanning the whole archive.
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        _add(tar, MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
        _add(tar, ROOTFS, rootfs_gz)


def write_bundle(rootfs_img: Path, out: Path, *, version: str, device_type: str, variant: str) -> None:
    """Write the bundle for one root filesystem image (the gzipped copy is made beside `out`)."""
    _pack({"version": version, "device_type": device_type, "variant": variant}, rootfs_img, out)


def _pack(said: dict, rootfs_img: Path, out: Path) -> None:
    """A bundle of `rootfs_img` whose manifest says `said` and describes the root it now carries."""
    rootfs_gz = out.with_name(f".{out.name}.{ROOTFS}")
    with rootfs_img.open("rb") as src, gzip.GzipFile(rootfs_gz, "wb", compresslevel=6, mtime=0) as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
    manifest = {
        **said,
        "rootfs": {
            "file": ROOTFS,
            "compressed_sha256": _digest(rootfs_gz),
            "compressed_size": rootfs_gz.stat().st_size,
            "sha256": _digest(rootfs_img),
            "size": rootfs_img.stat().st_size,
        },
    }
    _write(out, manifest, rootfs_gz)
    rootfs_gz.unlink()


def unpack(bundle: Path, rootfs_img: Path) -> dict:
    """The root filesystem `bundle` carries, uncompressed into `rootfs_img` and checked against its
    manifest (no more bytes than it states, the digest it states); the manifest."""
    manifest = read_manifest(bundle)
    stated = manifest.get("rootfs")
    if not isinstance(stated, dict) or not isinstance(stated.get("size"), int) or "sha256" not in stated:
        raise ImageError(f"{bundle}: its manifest states no rootfs size and sha256")
    sha = hashlib.sha256()
    try:
        with tarfile.open(bundle, "r:") as tar, rootfs_img.open("wb") as out:
            member = tar.extractfile(stated.get("file", ROOTFS))
            if member is None:
                raise ImageError(f"{bundle}: {ROOTFS} is not a file")
            with gzip.GzipFile(fileobj=member) as gz:
                while chunk := gz.read(_CHUNK):
                    if out.tell() + len(chunk) > stated["size"]:
                        raise ImageError(f"{bundle}: its root is larger than the {stated['size']} bytes said")
                    sha.update(chunk)
                    if chunk.count(0) == len(chunk):  # the root stays as sparse as it was built
                        out.seek(len(chunk), 1)
                    else:
                        out.write(chunk)
                out.truncate()
    except (tarfile.TarError, KeyError, OSError, EOFError) as exc:
        raise ImageError(f"{bundle}: its root could not be read: {exc}") from exc
    if sha.hexdigest() != stated["sha256"]:
        raise ImageError(f"{bundle}: its root does not match the sha256 its manifest states")
    return manifest


def repack(manifest: dict, rootfs_img: Path, out: Path) -> None:
    """A bundle at `out` whose manifest says what `manifest` (unpack's) said, carrying `rootfs_img` as its
    root."""
    _pack({key: value for key, value in manifest.items() if key != "rootfs"}, rootfs_img, out)


def make_foreign_bundle(bundle: Path, device_type: str, out: Path) -> Path:
    """A copy of `bundle` that claims another device type (checksums still valid), for rejection tests."""
    manifest = {**read_manifest(bundle), "device_type": device_type}
    with tarfile.open(bundle) as tar:
        rootfs = out.with_name(f".{out.name}.{ROOTFS}")
        member = tar.extractfile(ROOTFS)
        if member is None:
            raise ImageError(f"{bundle} has no {ROOTFS}")
        with rootfs.open("wb") as f:
            shutil.copyfileobj(member, f, _CHUNK)
    _write(out, manifest, rootfs)
    rootfs.unlink()
    return out


def truncate_bundle(bundle: Path, out: Path, keep: float = 0.5) -> Path:
    """A copy of `bundle` cut after `keep` of its bytes, as an interrupted download leaves it."""
    size = int(bundle.stat().st_size * keep)
    with bundle.open("rb") as src, out.open("wb") as dst:
        dst.write(src.read(size))
    return out
