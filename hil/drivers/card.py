"""Card identity: find the rig's SD card among the host's block devices, and refuse any other disk."""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hil.errors import FlashError, RigConfigError

log = logging.getLogger("hil.card")

_SECTOR = 512


@dataclass(frozen=True)
class CardIdentity:
    """How a rig names its card reader: USB vendor/product (and serial), or a /dev/disk/by-path name."""

    vendor_id: str | None = None
    product_id: str | None = None
    serial: str | None = None
    by_path: str | None = None

    def __post_init__(self) -> None:
        if not self.by_path and not (self.vendor_id and self.product_id):
            raise RigConfigError(f"card identity {self} needs vendor_id and product_id, or by_path")

    def __str__(self) -> str:
        if self.by_path:
            return f"card reader {self.by_path}"
        serial = f" serial {self.serial}" if self.serial else ""
        return f"card reader usb {self.vendor_id}:{self.product_id}{serial}"


@dataclass(frozen=True)
class Card:
    """A card the host sees: its device node, kernel name, size, and device number (sysfs `dev`)."""

    device: Path
    name: str
    size_bytes: int
    identity: CardIdentity
    number: int | None

    @property
    def dev(self) -> str:
        """The device number as major:minor, as sysfs and lsblk show it."""
        return "unknown" if self.number is None else f"{os.major(self.number)}:{os.minor(self.number)}"


def device_number(text: str) -> int | None:
    """A sysfs `dev` attribute ("8:0") as a device number, or None when it is not one."""
    major, sep, minor = text.partition(":")
    return os.makedev(int(major), int(minor)) if sep and major.isdigit() and minor.isdigit() else None


def block_device_number(opened: os.stat_result) -> int | None:
    """The device number of an opened node when it is a block device, else None."""
    return opened.st_rdev if stat.S_ISBLK(opened.st_mode) else None


class CardLocator:
    """Resolves a rig's card identity to a block device through sysfs, and guards writes to it."""

    def __init__(
        self,
        identity: CardIdentity,
        sysfs_root: Path = Path("/sys"),
        dev_root: Path = Path("/dev"),
        mountinfo: Path = Path("/proc/self/mountinfo"),
        number_of: Callable[[os.stat_result], int | None] = block_device_number,
    ) -> None:
        self.identity = identity
        self.sysfs_root = Path(sysfs_root)
        self.dev_root = Path(dev_root)
        self.mountinfo = Path(mountinfo)
        # Which block device an opened node is; a fake /dev (whose nodes are plain files) answers for itself.
        self.number_of = number_of

    def find(self) -> Card | None:
        """The card when the reader is present and holds media, else None; FlashError if ambiguous."""
        names = self._matching_disks()
        if len(names) > 1:
            raise FlashError(
                f"{self.identity} matches {len(names)} disks ({', '.join(names)}); add its serial"
            )
        if not names or not (size := self._size(names[0])):
            return None
        number = device_number(_read(self.sysfs_root / "block" / names[0] / "dev"))
        return Card(self.dev_root / names[0], names[0], size, self.identity, number)

    def wait(self, timeout: float, poll: float = 0.1) -> Card:
        """Poll sysfs until the card's block device appears with media; FlashError past `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (card := self.find()) is None:
            if time.monotonic() >= deadline:
                raise FlashError(
                    f"{self.identity}: no card appeared under {self.sysfs_root}/block within {timeout:g} s"
                )
            time.sleep(poll)
        log.info("%s is %s (%d bytes)", self.identity, card.device, card.size_bytes)
        return card

    def check_writable(self, device: Path, max_bytes: int) -> Card:
        """Refuse, before any byte is written, a device that is not this card, is in use, or is too big."""
        name = self._block_name(Path(device))
        card = self.find()
        if card is None or card.name != name:
            where = f"the card is {card.device}" if card else "no such card is present"
            raise FlashError(f"refusing to flash {device}: it is not the rig's {self.identity} ({where})")
        for mount_point, part in self._mounts_on(name):
            if mount_point == "/":
                raise FlashError(f"refusing to flash {device}: {part} holds the host's root filesystem")
            raise FlashError(f"refusing to flash {device}: {part} is mounted at {mount_point}")
        if card.size_bytes > max_bytes:
            raise FlashError(
                f"refusing to flash {device}: it holds {card.size_bytes} bytes, "
                f"more than the rig's max card size of {max_bytes} bytes"
            )
        if _read(self.sysfs_root / "block" / name / "ro") == "1":
            raise FlashError(f"refusing to flash {device}: the card is write-protected (its lock switch?)")
        log.info("%s passed the write checks (%s, %d bytes)", device, self.identity, card.size_bytes)
        return card

    def check_node(self, card: Card, fd: int) -> None:
        """Refuse an opened descriptor that is not the checked card's block device (FlashError naming both).

        Between the write checks and the open, the card can be pulled and its node vanish or be reused by
        another disk; the descriptor's own fstat is what says which device it is.
        """
        opened = os.fstat(fd)
        number = self.number_of(opened)
        if card.number is None or number != card.number:
            raise FlashError(
                f"refusing to flash {card.device}: expected block device {card.dev} ({card.name}), "
                f"found {_describe(opened, number)}; nothing more written"
            )

    def _matching_disks(self) -> list[str]:
        if self.identity.by_path:
            link = self.dev_root / "disk" / "by-path" / Path(self.identity.by_path).name
            name = self._block_name(link) if os.path.lexists(link) else None
            return [name] if name else []
        return [name for name in self._disks() if self._usb_identity_of(name) == self._wanted()]

    def _wanted(self) -> tuple[str | None, ...]:
        return (self.identity.vendor_id, self.identity.product_id, self.identity.serial or None)

    def _usb_identity_of(self, name: str) -> tuple[str | None, ...] | None:
        # The first ancestor with idVendor is the USB device (the reader) the disk hangs off.
        node = (self.sysfs_root / "block" / name).resolve()
        root = self.sysfs_root.resolve()
        while node != root and node != node.parent:
            if (node / "idVendor").is_file():
                serial = _read(node / "serial") if self.identity.serial else None
                return (_read(node / "idVendor"), _read(node / "idProduct"), serial)
            node = node.parent
        return None

    def _disks(self) -> list[str]:
        block = self.sysfs_root / "block"
        return sorted(entry.name for entry in block.iterdir()) if block.is_dir() else []

    def _size(self, name: str) -> int:
        return int(_read(self.sysfs_root / "block" / name / "size") or 0) * _SECTOR

    def _block_name(self, device: Path) -> str:
        """The kernel name of the disk a /dev path points at (following by-id/by-path links)."""
        path = self._under_dev_root(device)
        # Follow links only while they stay in /dev: the twin's card node links out to an image file.
        while path.is_symlink():
            target = Path(os.path.normpath(path.parent / os.readlink(path)))
            if not target.is_relative_to(self.dev_root):
                break
            path = target
        name = os.path.relpath(path, self.dev_root)
        if not (self.sysfs_root / "block" / name).exists():
            raise FlashError(f"refusing to flash {device}: it is not a whole disk the host knows ({name})")
        return name

    def _under_dev_root(self, device: Path) -> Path:
        if self.dev_root != Path("/dev") and device.is_relative_to("/dev"):
            return self.dev_root / device.relative_to("/dev")
        return device

    def _mounts_on(self, name: str) -> list[tuple[str, str]]:
        """(mount point, partition) of each filesystem mounted from the disk or from what is stacked on it."""
        owned = self._stack(self.sysfs_root / "block" / name)
        found = []
        for line in _read(self.mountinfo).splitlines():
            fields, _, tail = line.partition(" - ")
            parts, source = fields.split(), [*tail.split(), "", ""][1]
            if len(parts) < 5:
                continue
            source_name = Path(source).name
            holder = owned.get(parts[2]) or next((n for n in owned.values() if n == source_name), None)
            if holder:
                found.append((_unescape(parts[4]), holder))
        return found

    def _stack(self, disk_dir: Path) -> dict[str, str]:
        """maj:min -> name of the disk, its partitions, and devices stacked on them (dm, md), recursively."""
        owned: dict[str, str] = {}
        pending = [disk_dir]
        while pending:
            node = pending.pop()
            owned[_read(node / "dev")] = node.name
            pending += [p for p in node.iterdir() if (p / "partition").is_file()]
            holders = node / "holders"
            if holders.is_dir():
                pending += [self.sysfs_root / "block" / h.name for h in holders.iterdir()]
        return owned


def _describe(opened: os.stat_result, number: int | None) -> str:
    if number is not None:
        return f"block device {os.major(number)}:{os.minor(number)}"
    kinds = {"-": "a regular file", "b": "a block device", "c": "a character device", "d": "a directory"}
    kind = kinds.get(stat.filemode(opened.st_mode)[0], "a special file")
    if stat.S_ISBLK(opened.st_mode) or stat.S_ISCHR(opened.st_mode):
        kind += f" {os.major(opened.st_rdev)}:{os.minor(opened.st_rdev)}"
    return kind


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _unescape(field: str) -> str:
    # mountinfo escapes spaces and friends as octal (\040).
    return field.encode().decode("unicode_escape")
