"""Put a fault into a copy of an image, without mounts or loop devices (hil.images.edit: debugfs on ext
file systems, a raw window onto qcow2), and check every change reads back.

Where a path lands comes from the OS profile's layout: the partition mounted at the longest prefix of the
path, and for a root (every A/B slot) each slot that holds a file system; a profile that names no
partitions means every ext partition of the image. A bundle's edits land in the root it carries (a path on
another partition is not in it), and the bundle is rebuilt beside the copy (hil.faults.repack). An edit
that finds nothing to change where the profile says (the file is not there, the text to replace is not in
it) is NotInjected, never a fault in place.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from hil.errors import FaultError, ImageError
from hil.faults.model import Edit, Fault
from hil.faults.repack import rebuild
from hil.images import edit
from hil.images.read import materialize
from hil.lab.bundles import bundle_beside, bundles_beside, load_bundles
from hil.os.model import OsProfile
from hil.os.vocabulary import BundleRole

STUB = b"#!/bin/sh\n# hil faults: this program was replaced by one that exits 0 and does nothing\nexit 0\n"


class NotInjected(FaultError):
    """The fault could not be put where the profile says: the image is not as its profile describes."""


@dataclass(frozen=True)
class Place:
    """Where an OS path lies in the image: a partition and the path inside its file system."""

    number: int
    path: str


def copy_image(image: Path, into: Path) -> Path:
    """A sparse raw copy of `image` in directory `into` (a compressed image decompressed: debugfs edits raw
    bytes), with its sidecars (version, bundles) beside it."""
    into.mkdir(parents=True, exist_ok=True)
    stem = image.name.split(".img")[0].removesuffix(".zip")
    copy = into / f"{stem}.img"
    raw = materialize(image)  # the image itself when it is raw; else a decompressed copy, cached
    done = subprocess.run(["cp", "--sparse=always", "--reflink=auto", str(raw), str(copy)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise FaultError(f"copying {image} for a fault failed: {done.stderr.strip()}")
    stem += "."
    bundles = bundles_beside(image)
    for sidecar in image.parent.iterdir():
        if sidecar.name.startswith(stem) and sidecar not in (image, bundles) and sidecar.name != copy.name:
            (into / sidecar.name).symlink_to(sidecar.resolve())
    if bundles is not None:  # its paths are relative to it: the copy names them where they are
        loaded = load_bundles(bundles)
        data: dict[str, str] = {role: str(path.resolve()) for role, path in loaded.roles.items()}
        if loaded.version:
            data["version"] = loaded.version
        (into / bundles.name).write_text(yaml.safe_dump(data))
    return copy


def places(image: Path, profile: OsProfile, path: str) -> list[Place]:
    """Every partition where `path` may be, with the path inside it."""
    target = PurePosixPath(path)
    mounted = [(PurePosixPath(p.mount), p.number) for p in profile.layout.partitions.values() if p.mount]
    if not mounted:
        return [Place(p.number, path) for p in edit.partitions_of(image) if not p.fat]
    longest = max(
        (m for m, _ in mounted if target.is_relative_to(m)), key=lambda m: len(m.parts), default=None
    )
    if longest is None:
        return []
    inner = "/" + str(target.relative_to(longest)) if target != longest else "/"
    return [Place(number, inner) for mount, number in mounted if mount == longest]


def inject(fault: Fault, profile: OsProfile, image: Path, image_dir: Path) -> list[str]:
    """Apply `fault`'s edits to `image` (a copy) and to the bundles beside it, each checked; what was
    done, one line an edit. `image_dir`: the original image's directory (its keys, for re-signing)."""
    for required in fault.requires:
        if not any(edit.stat(image, p.number, p.path) for p in _ext(image, profile, required)):
            raise NotInjected(f"{required} is not in the image where OS profile {profile.name!r} puts it")
    done = [
        line for change in fault.edits for line in _apply(change, image, _ext(image, profile, change.path))
    ]
    for role, edits in fault.bundle_edits.items():
        done += _rebuild(role, edits, profile, image, image_dir)
    return done


def _ext(image: Path, profile: OsProfile, path: str) -> list[Place]:
    """The places of `path` on partitions that are not FAT; NotInjected when the profile names a partition
    the image does not have."""
    found = {p.number: p.fat for p in edit.partitions_of(image)}
    chosen = places(image, profile, path)
    missing = sorted({p.number for p in chosen if p.number not in found})
    if missing:
        raise NotInjected(f"{path}: OS profile {profile.name!r} puts it on partition {missing[0]}, which the "
                          f"image does not have (it has: {', '.join(map(str, sorted(found)))})")  # fmt: skip
    return [p for p in chosen if not found[p.number]]


def _in_root(profile: OsProfile, path: str) -> list[Place]:
    """Where `path` lies in a bundle's root file system; NotInjected when the profile puts it on a
    partition that is not a root slot, which no bundle carries."""
    target = PurePosixPath(path)
    mounts = {PurePosixPath(p.mount): p.holds for p in profile.layout.partitions.values() if p.mount}
    longest = max((m for m in mounts if target.is_relative_to(m)), key=lambda m: len(m.parts), default=None)
    if longest is not None and mounts[longest] != "slot":
        raise NotInjected(
            f"{path} is on the {mounts[longest]} partition ({longest}), which an update does not carry"
        )
    inner = target.relative_to(longest) if longest is not None else target.relative_to("/")
    return [Place(edit.WHOLE, str(PurePosixPath("/", inner)))]


def _rebuild(
    role: BundleRole, edits: tuple[Edit, ...], profile: OsProfile, image: Path, image_dir: Path
) -> list[str]:
    """The `role` bundle beside the copy, rebuilt with `edits` made to its root; the bundles file (or the
    bundle beside the image) then names the rebuilt one."""
    bundles = bundles_beside(image)
    named = load_bundles(bundles).roles if bundles else {}
    beside = bundle_beside(image) if role == "good" and bundles is None else None
    original = named.get(role) or beside
    if original is None:
        raise NotInjected(f"the image has no {role} bundle beside it to change")
    assert profile.update is not None and profile.update.repack is not None  # see not_applicable
    out = image.parent / f"fault-{role}-{original.name}"
    whom = f"the {role} bundle's root"

    def change(root: Path) -> list[str]:
        return [line for e in edits for line in _apply(e, root, _in_root(profile, e.path), whom)]

    try:
        done = rebuild(original.resolve(), out, profile.update.repack, image_dir, change)
    except NotInjected:
        raise
    except (FaultError, ImageError) as exc:
        raise NotInjected(f"the {role} bundle could not be rebuilt: {exc}") from None
    if beside is not None:
        out.replace(beside)  # the link to the original becomes the rebuilt bundle
    else:
        assert bundles is not None
        data = yaml.safe_load(bundles.read_text())
        bundles.write_text(yaml.safe_dump({**data, role: str(out)}))
    return [*done, f"rebuilt the {role} bundle ({original.name}) with {len(done)} change(s)"]


def _apply(change: Edit, image: Path, spots: list[Place], whom: str = "") -> list[str]:
    """One edit, in every place it applies; NotInjected when it applies nowhere."""
    done: list[str] = []
    for place in spots:
        where = f"{change.path} ({whom or f'partition {place.number}'})"
        try:
            done += _apply_at(change, image, place, where)
        except ImageError as exc:
            raise NotInjected(f"{where}: {exc}") from None
    if not done and change.replace is not None and any(edit.stat(image, p.number, p.path) for p in spots):
        raise NotInjected(f"{change.path}: the text to replace is not in it ({change.replace.old[:60]!r})")
    if not done:
        raise NotInjected(f"{change.path}: not in {whom or 'the image where the OS profile puts it'}")
    return done


def _apply_at(change: Edit, image: Path, place: Place, where: str) -> list[str]:
    """One edit in one place; [] when that place has nothing for it (no such file or directory)."""
    entry = edit.stat(image, place.number, place.path)
    root = edit.stat(image, place.number, "/")
    if (change.write or change.link) and root is not None and root.kind == "directory":
        edit.make_dirs(image, place.number, str(PurePosixPath(place.path).parent))  # a drop-in's folder
    parent = edit.stat(image, place.number, str(PurePosixPath(place.path).parent))
    in_a_directory = parent is not None and parent.kind == "directory"
    if change.write is not None and in_a_directory:
        edit.write_file(image, place.number, place.path, change.write.content.encode(), change.write.mode)
        return [f"wrote {where}"]
    if change.link is not None and in_a_directory:
        edit.symlink(image, place.number, place.path, change.link.target)
        return [f"linked {where} to {change.link.target}"]
    if change.stub is not None and entry is not None:
        edit.write_file(
            image, place.number, place.path, STUB, entry.mode if entry.kind == "regular" else 0o755
        )
        return [f"stubbed {where}"]
    if change.remove is not None and entry is not None:
        edit.remove(image, place.number, place.path)
        return [f"removed {where}"]
    if change.replace is not None and entry is not None:
        return _replace(change, image, place, entry, where)
    return []


def _replace(change: Edit, image: Path, place: Place, entry: edit.Entry, where: str) -> list[str]:
    assert change.replace is not None
    if entry.kind != "regular":
        raise NotInjected(f"{where} is a {entry.kind}, not a file whose text can be replaced")
    text = edit.read_file(image, place.number, place.path).decode(errors="surrogateescape")
    if change.replace.old not in text:
        return []  # this place holds another version of the file; another may hold the text
    new = text.replace(change.replace.old, change.replace.new).encode(errors="surrogateescape")
    edit.write_file(image, place.number, place.path, new, entry.mode)
    return [f"replaced {change.replace.old[:40]!r} in {where}"]


def remove_copy(directory: Path) -> None:
    """Remove a fault's copy of the image and its sidecars."""
    shutil.rmtree(directory, ignore_errors=True)
