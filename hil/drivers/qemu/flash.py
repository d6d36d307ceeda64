"""What a flash puts on a virtual board: a qcow2 overlay over the cached image, or, for a flasher image,
that overlay as the installer medium beside an empty internal disk.

balenaOS's images for generic x86 boards are flasher images: an installer that writes the OS it carries
onto the device's internal disk and powers off. They say so with a marker file on their boot partition
(meta-balena's BALENA_FLASHER_FLAG_FILE, `balena-image-flasher`), which balena's own tools read; so does
hil. Such an image needs a board with an internal disk (the rig's `qemu.internal_disk`); any other image
on such a board is written onto the internal disk, as a technician would write it with dd.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hil.drivers.config_json import ConfigPlace
from hil.drivers.qemu.disks import DiskSet, DiskSets
from hil.errors import ImageError, QemuError, RigConfigError
from hil.images.edit import partitions_of, read_file, write_file
from hil.images.read import materialize
from hil.util.hostproc import tool

log = logging.getLogger("hil.qemu")

MARKER = "/balena-image-flasher"  # on the boot partition of a flasher image
MIB = 1 << 20
GIB = 1 << 30


def is_flasher(disk: Path, place: ConfigPlace | None) -> bool:
    """Whether a raw or qcow2 disk image is a flasher: its boot partition (where config.json goes, else
    its first FAT partition) carries MARKER."""
    try:
        boot = (place or ConfigPlace()).find(partitions_of(disk), disk)
        read_file(disk, boot.number, MARKER)
    except ImageError:
        return False  # no such partition, or no marker on it
    return True


def qcow2(path: Path, *, backing: Path | None = None, size: int | None = None) -> None:
    """A new qcow2 disk: an overlay over the raw `backing` (its size, unless `size` says), or empty."""
    args = ["-F", "raw", "-b", str(backing.resolve())] if backing else []
    sized = [str(size)] if size is not None else []
    out = subprocess.run(
        [tool("qemu-img", "qemu-utils"), "create", "-q", "-f", "qcow2", *args, str(path), *sized],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        what = f"an overlay on {backing}" if backing else f"a {path.name} disk"
        raise QemuError(f"qemu-img could not create {what}: {out.stderr.strip()}")


def _size(size: int) -> str:
    for unit, name in ((GIB, "GiB"), (MIB, "MiB")):
        if size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


def prepare(
    disks: DiskSets,
    board: str,
    image: Path,
    config: dict[str, Any],
    place: ConfigPlace | None,
    internal_disk: int | None,
) -> DiskSet:
    """A new disk set for `image` configured with `config` (written at `place`; None: nowhere), on a
    board whose internal disk has `internal_disk` bytes (None: it has none)."""
    base = materialize(image)  # the cached raw image; the overlay never changes it
    flasher = is_flasher(base, place)
    if flasher and internal_disk is None:
        raise RigConfigError(
            f"{image.name} is a flasher image ({MARKER} on its boot partition): it installs onto an "
            f"internal disk, and board {board} has none; give its rig one (qemu: internal_disk: 8GiB)"
        )
    if not flasher and internal_disk is not None and base.stat().st_size > internal_disk:
        raise ImageError(
            f"{image.name} ({_size(base.stat().st_size)}) does not fit board {board}'s internal disk "
            f"({_size(internal_disk)})"
        )
    root = disks.new_root()
    try:
        overlay = root / "disk.qcow2"
        qcow2(overlay, backing=base, size=None if flasher else internal_disk)
        if place is not None:  # where a device finds it: on its boot partition (a flasher's: the installer's)
            number = place.find(partitions_of(overlay), image).number
            write_file(overlay, number, place.path, (json.dumps(config, indent=2) + "\n").encode())
        if not flasher:
            return DiskSet(root, overlay, "qcow2", internal=internal_disk is not None)
        internal = root / "internal.qcow2"
        qcow2(internal, size=internal_disk)
        log.info("%s: %s is a flasher image: it installs onto an empty %s internal disk", board,
                 image.name, _size(internal_disk or 0))  # fmt: skip
        return DiskSet(root, internal, "qcow2", internal=True, installer=overlay)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
