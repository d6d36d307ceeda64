"""Files inside a partition of a disk image, read and written without a mount or a loop device.

A FAT partition is edited with mtools, an ext2/3/4 one with debugfs. Both need a raw file: a raw disk
image is edited where it lies (`image@@offset` for mtools, `image?offset=` for debugfs); a qcow2 image
(a board's overlay) is edited on a sparse raw copy of the one partition, read through a raw window onto
the qcow2 (`qemu-img convert --image-opts driver=raw,offset=,size=`), and only the 64 KiB blocks that
changed go back through the same window (`qemu-io write -s`). So an overlay grows by what changed, its
base never does, and no write can stray outside the partition. Partition number WHOLE (0) is the whole
file: a bare ext file system, as an update bundle carries its root. One helper serves provisioning
(config.json onto the boot partition), fault injection, and anything later that must change an image's
files.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from hil.errors import ImageError, ToolMissing
from hil.images.partitions import Partition, partitions

BLOCK = 64 << 10
WHOLE = 0  # the "partition" that is the whole file: a bare file system with no partition table
MIB = 1 << 20
_MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} is needed to edit files inside an image (apt-get install {package})")
    return path


def _run(args: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(args, capture_output=True, env={**os.environ, **_MTOOLS_ENV}, check=False)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        raise ImageError(f"{what} failed: {said[-1] if said else f'exit status {done.returncode}'}")
    return done


def _format(disk: Path) -> str:
    with disk.open("rb") as f:
        return "qcow2" if f.read(4) == b"QFI\xfb" else "raw"


def _window(disk: Path, offset: int, size: int) -> str:
    """QEMU block options that show `size` bytes of a qcow2 image from `offset` as a raw image of its own,
    so neither a read nor a write can stray outside them."""
    name = str(disk).replace(",", ",,")  # a comma inside an option value is doubled
    return f"driver=raw,offset={offset},size={size},file.driver=qcow2,file.file.filename={name}"


def _head(disk: Path, fmt: str) -> bytes:
    if fmt == "raw":
        with disk.open("rb") as f:
            return f.read(MIB)
    with tempfile.TemporaryDirectory(prefix="hil-edit-") as tmp:
        out = Path(tmp) / "head"
        _extract(disk, out, 0, MIB)
        return out.read_bytes()


def _extract(disk: Path, out: Path, offset: int, size: int) -> None:
    """`size` bytes of a qcow2 image from `offset` into a sparse raw file."""
    _run(
        [
            _tool("qemu-img", "qemu-utils"),
            "convert",
            "-O",
            "raw",
            "--image-opts",
            _window(disk, offset, size),
            str(out),
        ],
        f"reading {size} bytes at {offset} of {disk}",
    )


def partitions_of(disk: Path) -> list[Partition]:
    """The partition table of a raw or qcow2 disk image."""
    return partitions(_head(disk, _format(disk)))


def partition_of(disk: Path, number: int) -> Partition:
    """Partition `number` (1-based) of a raw or qcow2 disk image; WHOLE: all of a raw file, as one ext
    file system."""
    if number == WHOLE:
        if _format(disk) != "raw":
            raise ImageError(f"{disk} is not a raw file: a bare file system is edited as a raw one")
        return Partition(WHOLE, 0, disk.stat().st_size, fat=False)
    found = {p.number: p for p in partitions_of(disk)}
    if number not in found:
        have = ", ".join(map(str, sorted(found))) or "none"
        raise ImageError(f"{disk} has no partition {number} (it has: {have})")
    return found[number]


@contextlib.contextmanager
def _raw_view(disk: Path, part: Partition, write: bool) -> Iterator[tuple[Path, int]]:
    """A raw file and offset where the partition's bytes are, written back into a qcow2 image on exit."""
    if _format(disk) == "raw":
        yield disk, part.offset
        return
    with tempfile.TemporaryDirectory(prefix="hil-edit-") as tmp:
        copy = Path(tmp) / "partition.raw"
        _extract(disk, copy, part.offset, part.size)
        before = Path(tmp) / "before.raw"
        if write:
            shutil.copyfile(copy, before)
        yield copy, 0
        if write:
            _write_back(_window(disk, part.offset, part.size), before, copy, Path(tmp))


def _write_back(window: str, before: Path, after: Path, tmp: Path) -> None:
    """Write the blocks of `after` that differ from `before` into the partition's window of a qcow2 image."""
    commands: list[str] = []
    with before.open("rb") as old, after.open("rb") as new:
        at = 0
        while block := new.read(BLOCK):
            if old.read(BLOCK) != block:
                chunk = tmp / f"block-{at}"
                chunk.write_bytes(block)
                commands += ["-c", f"write -q -s {chunk} {at} {len(block)}"]
            at += len(block)
    if commands:
        _run([_tool("qemu-io", "qemu-utils"), "--image-opts", window, *commands], "writing a partition back")


def _fs_path(path: str) -> PurePosixPath:
    pure = PurePosixPath("/", path)
    if ".." in pure.parts or pure == PurePosixPath("/"):
        raise ImageError(f"{path!r} is not a file path inside a filesystem")
    return pure


def _debugfs(raw: Path, offset: int, commands: list[str], what: str, write: bool = False) -> str:
    """Run debugfs commands on the ext filesystem at `offset` of a raw file; its complaints, as text."""
    args = [_tool("debugfs", "e2fsprogs"), *(["-w"] if write else []), "-f", "-", f"{raw}?offset={offset}"]
    done = subprocess.run(args, input="\n".join(commands).encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"{what} failed: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.stderr.decode(errors="replace")


def _read(raw: Path, offset: int, fat: bool, path: PurePosixPath, what: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="hil-edit-") as tmp:
        out = Path(tmp) / "file"
        if fat:
            _run([_tool("mcopy", "mtools"), "-n", "-i", f"{raw}@@{offset}", f"::{path}", str(out)], what)
        else:
            said = _debugfs(raw, offset, [f'dump "{path}" "{out}"'], what)
            if not out.exists():
                raise ImageError(
                    f"{what} failed: {said.strip().splitlines()[-1] if said.strip() else 'no such file'}"
                )
        return out.read_bytes()


def read_file(disk: Path, number: int, path: str) -> bytes:
    """The bytes of `path` in partition `number` of `disk`, symbolic links followed within that file
    system (/etc/os-release -> ../usr/lib/os-release); ImageError when it is not there."""
    part, where = partition_of(disk, number), _fs_path(path)
    with _raw_view(disk, part, write=False) as (raw, offset):
        if not part.fat:
            where = _resolve(raw, offset, where)
        return _read(raw, offset, part.fat, where, f"reading {where} from partition {number} of {disk}")


# A chain of links longer than this is a loop (Linux's own limit on links followed is 40).
MAX_LINKS = 40
_LINK = re.compile(r'Fast link dest: "(.*)"')


def _resolve(raw: Path, offset: int, path: PurePosixPath) -> PurePosixPath:
    """`path` with its last component's symbolic links followed (as the running OS would read it)."""
    for _ in range(MAX_LINKS):
        said = _stat_text(raw, offset, path)
        kind = _STAT.search(said)
        if kind is None or kind.group(1) != "symlink":
            return path
        link = _LINK.search(said)
        if link is None:  # a slow link (a target of 60 bytes or more) keeps its target in a data block
            target = _read(raw, offset, False, path, f"reading the link {path}").decode(errors="replace")
        else:
            target = link.group(1)
        path = _fs_path(posixpath.normpath(posixpath.join(str(path.parent), target)))
    raise ImageError(f"{path}: more than {MAX_LINKS} symbolic links (a loop)")


def write_file(disk: Path, number: int, path: str, data: bytes, mode: int = 0o644) -> None:
    """Put `data` at `path` in partition `number` of `disk` (its directory must exist), replacing what was
    there, with permissions `mode` (ext only; FAT has none), and read it back."""
    part, where = partition_of(disk, number), _fs_path(path)
    what = f"writing {where} into partition {number} of {disk}"
    with (
        _raw_view(disk, part, write=True) as (raw, offset),
        tempfile.TemporaryDirectory(prefix="hil-edit-") as tmp,
    ):
        staged = Path(tmp) / "file"
        staged.write_bytes(data)
        staged.chmod(mode)  # debugfs gives the new inode the staged file's mode
        if part.fat:
            _run([_tool("mcopy", "mtools"), "-o", "-i", f"{raw}@@{offset}", str(staged), f"::{where}"], what)
        else:
            # debugfs writes a name into the current directory and refuses one that exists: cd, rm, write.
            commands = [f'cd "{where.parent}"', f'rm "{where.name}"', f'write "{staged}" "{where.name}"']
            _debugfs(raw, offset, commands, what, write=True)
        if _read(raw, offset, part.fat, where, f"reading back {where}") != data:
            raise ImageError(f"{what}: it does not read back as written")


@dataclass(frozen=True)
class Entry:
    """What a path in an ext filesystem is: its type (regular, directory, symlink, ...) and permissions."""

    kind: str
    mode: int


_STAT = re.compile(r"Type: (\S+)\s+Mode:\s+([0-7]+)")


def stat(disk: Path, number: int, path: str) -> Entry | None:
    """The type and mode of `path` (`/` too) in the ext filesystem of partition `number`; None when it is
    not there, or the partition holds no ext filesystem."""
    part = partition_of(disk, number)
    where = PurePosixPath("/") if path == "/" else _fs_path(path)
    if part.fat:
        raise ImageError(f"partition {number} of {disk} is FAT: it keeps no file types or modes")
    with _raw_view(disk, part, write=False) as (raw, offset):
        found = _STAT.search(_stat_text(raw, offset, where))
    return Entry(found.group(1), int(found.group(2), 8)) if found else None


def symlink(disk: Path, number: int, path: str, target: str) -> None:
    """Make `path` in the ext filesystem of partition `number` a symbolic link to `target`, replacing what
    was there (a systemd unit linked to /dev/null is masked)."""
    part, where = partition_of(disk, number), _fs_path(path)
    what = f"linking {where} to {target} in partition {number} of {disk}"
    with _raw_view(disk, part, write=True) as (raw, offset):
        _debugfs(raw, offset, [f'rm "{where}"', f'symlink "{where}" "{target}"'], what, write=True)
    if stat(disk, number, path) != Entry("symlink", 0o777):
        raise ImageError(f"{what}: it is not a link afterwards")


def make_dirs(disk: Path, number: int, path: str) -> None:
    """Make directory `path` and any missing parents in the ext filesystem of partition `number`."""
    part, where = partition_of(disk, number), _fs_path(path)
    missing = [d for d in [*reversed(where.parents[:-1]), where] if stat(disk, number, str(d)) is None]
    if missing:
        with _raw_view(disk, part, write=True) as (raw, offset):
            commands = [f'mkdir "{d}"' for d in missing]
            _debugfs(raw, offset, commands, f"making {where} in partition {number} of {disk}", write=True)
    entry = stat(disk, number, path)
    if entry is None or entry.kind != "directory":
        raise ImageError(f"{where} in partition {number} of {disk} is not a directory")


def remove(disk: Path, number: int, path: str) -> None:
    """Remove the file `path` from the ext filesystem of partition `number`."""
    part, where = partition_of(disk, number), _fs_path(path)
    what = f"removing {where} from partition {number} of {disk}"
    with _raw_view(disk, part, write=True) as (raw, offset):
        _debugfs(raw, offset, [f'rm "{where}"'], what, write=True)
    if stat(disk, number, path) is not None:
        raise ImageError(f"{what}: it is still there")


def _stat_text(raw: Path, offset: int, path: PurePosixPath) -> str:
    """What debugfs says of `path` (its inode: type, mode, a fast link's target); "" when it is not there."""
    args = [_tool("debugfs", "e2fsprogs"), "-R", f'stat "{path}"', f"{raw}?offset={offset}"]
    return subprocess.run(args, capture_output=True, check=False).stdout.decode(errors="replace")
