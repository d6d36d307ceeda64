"""A fake /sys, /dev and mountinfo in a directory: the block devices a twin rig and the tests pretend to have.

Layout, mirroring Linux (for a USB card reader `sda` with one partition):

    ROOT/sys/devices/pci0000:00/0000:00:14.0/usb1/1-N/          idVendor idProduct serial (the USB reader)
        1-N:1.0/host0/target0:0:0/0:0:0:0/block/sda/             size (512-byte sectors) dev ro removable
            sda1/                                                partition dev size
    ROOT/sys/block/sda -> ../devices/.../block/sda
    ROOT/dev/sda -> the backing file (the card's bytes)
    ROOT/dev/disk/by-path/pci-0000:00:14.0-usb-0:N:1.0-scsi-0:0:0:0 -> ../../sda
    ROOT/proc/self/mountinfo                                     one line per mount()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hil.drivers.card import CardIdentity, CardLocator

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
        for sub in ("sys/block", "dev/disk/by-path", "proc/self"):
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
        return CardLocator(identity, sysfs_root=self.sysfs, dev_root=self.dev, mountinfo=self.mountinfo)

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
        usb = self.sysfs / f"devices/pci0000:00/0000:00:14.0/usb1/1-{port}"
        usb.mkdir(parents=True, exist_ok=True)
        for attr, value in (("idVendor", vendor_id), ("idProduct", product_id), ("serial", serial)):
            (usb / attr).write_text(value + "\n")
        scsi = usb / f"1-{port}:1.0/host{port}/target{port}:0:0/{port}:0:0:0"
        by_path = f"pci-0000:00:14.0-usb-0:{port}:1.0-scsi-0:0:0:0"
        return self._add_disk(name, scsi, size_bytes, partitions, backing, by_path)

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
