"""A newc cpio writer, so the initramfs is built without host tools and byte-for-byte reproducibly."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


def _entry(
    out: BinaryIO, ino: int, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
) -> None:
    encoded = name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(mode) else 1
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    out.write(header + encoded + b"\0" * (-(len(header) + len(encoded)) % 4))
    out.write(data + b"\0" * (-len(data) % 4))


def write_newc(root: Path, out_path: Path, char_devices: dict[str, tuple[int, int]]) -> None:
    """Archive the tree under root (owned by root, mtime 0) plus the given /dev character nodes."""
    with out_path.open("wb") as out:
        ino = 1
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            base = Path(dirpath)
            for name in [*sorted(dirnames), *sorted(filenames)]:
                path = base / name
                info = path.lstat()
                rel = str(path.relative_to(root))
                if stat.S_ISLNK(info.st_mode):
                    data = os.readlink(path).encode()
                elif stat.S_ISREG(info.st_mode):
                    data = path.read_bytes()
                else:
                    data = b""
                _entry(out, ino, rel, info.st_mode, data)
                ino += 1
        for rel, rdev in sorted(char_devices.items()):
            _entry(out, ino, rel, stat.S_IFCHR | 0o600, rdev=rdev)
            ino += 1
        _entry(out, ino, "TRAILER!!!", 0)
