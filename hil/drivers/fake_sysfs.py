"""A fake /sys, /dev and mountinfo in a directory: the block devices a twin rig and the tests pretend to have.

Layout, mirroring Linux (for a USB card reader `sda` with one partition):

    ROOT/sys/devices/pci0000:00/0000:00:14.0/usb1/1-N/          idVendor idProduct serial (the USB reader)
        1-N:1.0/host0/target0:0:0/0:0:0:0/block/sda/             size (512-byte sectors) dev ro removable
            sda1/                                                partition dev size
    ROOT/sys/block/sda -> ../devices/.../block/sda
    ROOT/sys/bus/usb/devices/1-N -> ../../../devices/.../usb1/1-N      (each USB device, as pyusb numbers it)
    ROOT/dev/sda -> the backing file (the card's bytes)
    ROOT/dev/disk/by-path/pci-0000:00:14.0-usb-0:N:1.0-scsi-0:0:0:0 -> ../../sda
    ROOT/proc/self/mountinfo                                     one line per mount()
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hil.drivers.card import CardIdentity, CardLocator, device_number

_SECTOR = 512


@dataclass
class FakeDisk:
    """One disk of the fake tree: its kernel name, sysfs directory and backing file."""

    name: str
    sysfs_dir: Path
    backing: Path
    size_bytes: int
    by_path: str | None = None


@dataclass
class FakeBlockTree:
    """Builds and changes a fake sysfs/dev/mountinfo tree under `root`."""

    root: Path
    disks: dict[str, FakeDisk] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        for sub in ("sys/block", "sys/bus/usb/devices", "dev/disk/by-path", "proc/self"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.mountinfo.touch()

    @property
    def sysfs(self) -> Path:
        """The fake /sys."""
        return self.root / "sys"

    @property
    def dev(self) -> Path:
        """The fake /dev."""
        return self.root / "dev"

    @property
    def mountinfo(self) -> Path:
        """The fake /proc/self/mountinfo."""
        return self.root / "proc/self/mountinfo"

    def locator(self, identity: CardIdentity) -> CardLocator:
        """A CardLocator looking at this tree."""
        return CardLocator(
            identity,
            sysfs_root=self.sysfs,
            dev_root=self.dev,
            mountinfo=self.mountinfo,
            number_of=self.number_of,
        )

    def number_of(self, opened: os.stat_result) -> int | None:
        """The device number of an opened fake node: that of the disk whose backing file it is."""
        for disk in self.disks.values():
            if disk.backing.exists() and os.path.samestat(opened, disk.backing.stat()):
                return device_number((disk.sysfs_dir / "dev").read_text().strip())
        return None

    def add_usb_disk(
        self,
        name: str,
        *,
        vendor_id: str,
        product_id: str,
        serial: str,
        size_bytes: int,
        port: int = 1,
        partitions: int = 1,
        backing: Path | None = None,
    ) -> FakeDisk:
        """A disk behind a USB card reader; `backing` (created sparse if missing) holds its bytes."""
        usb = self._usb_device(port, vendor_id, product_id, serial)
        scsi = usb / f"1-{port}:1.0/host{port}/target{port}:0:0/{port}:0:0:0"
        by_path = f"pci-0000:00:14.0-usb-0:{port}:1.0-scsi-0:0:0:0"
        return self._add_disk(name, scsi, size_bytes, partitions, backing, by_path)

    def add_scsi_generic(self, disk: str, sg: str) -> None:
        """The SCSI generic node (sg1, say) of a USB disk's device: how a USB-SD-Mux is switched."""
        scsi = (self.sysfs / "block" / disk).resolve().parent.parent
        (scsi / "scsi_generic" / sg).mkdir(parents=True)
        (self.dev / sg).touch()

    def add_usb_serial(
        self, tty: str, *, vendor_id: str, product_id: str, serial: str, port: int, by_id: str
    ) -> None:
        """A USB serial adapter: its tty (ttyUSB0, say) and udev's /dev/serial/by-id link to it."""
        usb = self._usb_device(port, vendor_id, product_id, serial)
        (usb / f"1-{port}:1.0" / tty / "tty" / tty).mkdir(parents=True)
        (self.dev / tty).touch()
        (self.dev / "serial/by-id").mkdir(parents=True, exist_ok=True)
        (self.dev / "serial/by-id" / by_id).symlink_to(Path("../..") / tty)

    def _usb_device(self, port: int, vendor_id: str, product_id: str, serial: str) -> Path:
        usb = self.sysfs / f"devices/pci0000:00/0000:00:14.0/usb1/1-{port}"
        usb.mkdir(parents=True, exist_ok=True)
        for attr, value in (("idVendor", vendor_id), ("idProduct", product_id), ("serial", serial)):
            (usb / attr).write_text(value + "\n")
        link = self.sysfs / "bus/usb/devices" / usb.name
        if not link.is_symlink():
            link.symlink_to(Path("../../..") / usb.relative_to(self.sysfs))
        return usb

    def add_internal_disk(self, name: str, *, size_bytes: int, partitions: int = 2) -> FakeDisk:
        """A disk that is not on USB (the host's own disk, say)."""
        parent = self.sysfs / f"devices/pci0000:00/0000:00:05.0/virtio{len(self.disks)}"
        return self._add_disk(name, parent, size_bytes, partitions, None, None)

    def _add_disk(
        self, name: str, parent: Path, size: int, partitions: int, backing: Path | None, by_path: str | None
    ) -> FakeDisk:
        major, minor = 8, 16 * len(self.disks)
        disk_dir = parent / "block" / name
        disk_dir.mkdir(parents=True)
        (disk_dir / "holders").mkdir()
        attrs = {"dev": f"{major}:{minor}", "size": size // _SECTOR, "ro": 0, "removable": 1}
        for attr, value in attrs.items():
            (disk_dir / attr).write_text(f"{value}\n")
        for number in range(1, partitions + 1):
            part = disk_dir / f"{_partition_name(name, number)}"
            part.mkdir()
            for attr, value in (("partition", number), ("dev", f"{major}:{minor + number}"), ("size", 0)):
                (part / attr).write_text(f"{value}\n")
            (part / "holders").mkdir()
        (self.sysfs / "block" / name).symlink_to(Path("..") / disk_dir.relative_to(self.sysfs))
        backing = Path(backing) if backing else self.root / "media" / f"{name}.img"
        if not backing.exists():
            backing.parent.mkdir(parents=True, exist_ok=True)
            with open(backing, "wb") as f:
                f.truncate(size)
        (self.dev / name).symlink_to(backing.resolve())
        if by_path:
            (self.dev / "disk/by-path" / by_path).symlink_to(Path("../..") / name)
        disk = FakeDisk(name, disk_dir, backing, size, by_path)
        self.disks[name] = disk
        return disk

    def set_media(self, name: str, present: bool) -> None:
        """Insert or remove the card: a reader without media reports size 0, as real readers do."""
        disk = self.disks[name]
        (disk.sysfs_dir / "size").write_text(f"{disk.size_bytes // _SECTOR if present else 0}\n")

    def set_read_only(self, name: str, read_only: bool) -> None:
        """Slide the card's write-protect switch."""
        (self.disks[name].sysfs_dir / "ro").write_text(f"{int(read_only)}\n")

    def mount(self, device: str, mount_point: str, fstype: str = "ext4") -> None:
        """Record `device` (a disk or partition name such as sda1) as mounted at `mount_point`."""
        dev = _read_dev(self.sysfs, device)
        mount_id = len(self.mountinfo.read_text().splitlines()) + 20
        with open(self.mountinfo, "a") as f:
            f.write(f"{mount_id} 1 {dev} / {mount_point} rw,relatime shared:1 - {fstype} /dev/{device} rw\n")

    def stack(self, lower: str, upper: str) -> None:
        """Put device-mapper device `upper` (dm-0, say) on top of partition or disk `lower`."""
        dm = self.sysfs / "devices/virtual/block" / upper
        dm.mkdir(parents=True)
        (dm / "dev").write_text(f"254:{len(list(dm.parent.iterdir()))}\n")
        (dm / "holders").mkdir()
        (self.sysfs / "block" / upper).symlink_to(Path("..") / dm.relative_to(self.sysfs))
        lower_dir = next(self.sysfs.glob(f"block/*/{lower}"), self.sysfs / "block" / lower)
        (lower_dir / "holders" / upper).symlink_to(dm)


def _partition_name(disk: str, number: int) -> str:
    return f"{disk}p{number}" if disk[-1].isdigit() else f"{disk}{number}"


def _read_dev(sysfs: Path, device: str) -> str:
    found = next(sysfs.glob(f"block/*/{device}/dev"), sysfs / "block" / device / "dev")
    return found.read_text().strip()
