"""`hil rig discover`: the USB card readers, SD muxes and serial adapters on this host, as rig-file YAML.

pyusb enumerates the USB devices (vendor, product, serial number, bus and port path); sysfs maps each one
to the nodes the kernel made for it (a disk, a SCSI generic node, a tty), and /dev/disk/by-path and
/dev/serial/by-id give the stable names a rig file uses. The USB backend and both roots are parameters,
so a fake USB tree stands in for hardware in tests.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hil.errors import HilError, ToolMissing

USB_SD_MUX = ("0424", "4041")  # Linux Automation's USB-SD-Mux: a card reader with a mux control node
_CHILD_DEVICE = re.compile(r"\d+-[\d.]+")  # a device below a hub; its nodes are its own, not the hub's
_SECTOR = 512


class UsbDevice(Protocol):
    """What discover reads of a pyusb device (usb.core.Device has all of it)."""

    idVendor: int
    idProduct: int
    bus: int
    port_numbers: tuple[int, ...] | None

    @property
    def serial_number(self) -> str | None:
        """The serial number string (reading it may need permissions the host does not give)."""
        ...

    @property
    def product(self) -> str | None:
        """The product string."""
        ...


@dataclass(frozen=True)
class Disk:
    """A disk behind a USB device: kernel name, size (0: no card in the reader), by-path name."""

    name: str
    size_bytes: int
    by_path: str | None


@dataclass(frozen=True)
class Found:
    """One USB device that a rig file may name, with the nodes the kernel made for it."""

    vendor_id: str
    product_id: str
    serial: str
    product: str
    port: str  # the sysfs name: bus-port.port...
    disks: tuple[Disk, ...]
    controls: tuple[str, ...]  # /dev/sg* nodes (a USB-SD-Mux is switched through one)
    consoles: tuple[str, ...]  # /dev/serial/by-id/... names, or /dev/tty* where udev made none

    @property
    def kind(self) -> str:
        """What it is to a rig: USB-SD-Mux, card reader or serial adapter."""
        if (self.vendor_id, self.product_id) == USB_SD_MUX:
            return "USB-SD-Mux"
        return "card reader" if self.disks else "serial adapter"


def usb_devices(backend: Any = None) -> list[UsbDevice]:
    """Every USB device pyusb sees; a HilError in one line when this host gives no USB access."""
    import usb.core  # at call time, for start-up speed: only discovery needs pyusb

    try:
        return list(usb.core.find(find_all=True, backend=backend))
    except usb.core.NoBackendError:
        raise ToolMissing(
            "no USB access: pyusb finds no libusb backend (apt-get install libusb-1.0-0)"
        ) from None
    except usb.core.USBError as exc:
        raise HilError(f"no USB access: pyusb cannot list the USB devices: {exc}") from None


def discover(
    devices: Iterable[UsbDevice], sysfs: Path = Path("/sys"), dev: Path = Path("/dev")
) -> list[Found]:
    """The card readers, SD muxes and serial adapters among `devices`, in port order."""
    found = []
    for device in devices:
        if not device.port_numbers:
            continue  # a root hub
        port = f"{device.bus}-{'.'.join(map(str, device.port_numbers))}"
        node = sysfs / "bus/usb/devices" / port
        if not node.is_dir():
            continue
        disks, controls, ttys = _nodes(node.resolve())
        if not (disks or ttys):
            continue  # a keyboard, a hub, a camera: nothing a rig file names
        found.append(Found(
            vendor_id=f"{device.idVendor:04x}", product_id=f"{device.idProduct:04x}",
            serial=_string(device, "serial_number", node / "serial"),
            product=_string(device, "product", node / "product"), port=port,
            disks=tuple(Disk(d, _size(sysfs, d), _link_to(dev / "disk/by-path", d)) for d in disks),
            controls=tuple(f"/dev/{c}" for c in controls),
            consoles=tuple(_console_name(dev, t) for t in ttys),
        ))  # fmt: skip
    return sorted(found, key=lambda f: [int(p) for p in re.split(r"[-.]", f.port)])


def render(found: list[Found]) -> str:
    """One YAML document per device: the fields its part of a rig file needs, with what was seen."""
    return "".join(f"---\n{_snippet(f)}" for f in found)


def _snippet(f: Found) -> str:
    ids = (
        f"{f.vendor_id}:{f.product_id}{' ' + json.dumps(f.product) if f.product else ''} on USB port {f.port}"
    )
    if not f.disks:
        lines = [f"# serial adapter {ids}: {', '.join(f.consoles)}", "console:"]
        return "\n".join([*lines, f"  port: {json.dumps(f.consoles[0])}", "  baudrate: 115200", ""])
    disk = f.disks[0]
    held = f"a card of {disk.size_bytes / 1e9:.1f} GB" if disk.size_bytes else "no card in it"
    lines = [f"# {f.kind} {ids}: /dev/{disk.name}, {held}"]
    if f.kind == "USB-SD-Mux" and f.controls:
        lines += ["sd_mux:", "  type: usb", f"  control: {f.controls[0]}"]
    lines += ["card:", *_identity(f, disk)]
    if disk.size_bytes:
        limit = 2 ** math.ceil(math.log2(max(disk.size_bytes / 1e9, 1)))
        lines.append(f"  max_size: {limit}GB  # hil refuses any bigger disk")
    else:
        lines.append(
            "  max_size: 64GB  # the largest card this reader will hold; hil refuses any bigger disk"
        )
    return "\n".join([*lines, ""])


def _identity(f: Found, disk: Disk) -> list[str]:
    """The reader's USB identity, or its port (by_path) when it has no serial number to tell it apart."""
    usb = [f"  vendor_id: {json.dumps(f.vendor_id)}", f"  product_id: {json.dumps(f.product_id)}"]
    if f.serial:
        usb.append(f"  serial: {json.dumps(f.serial)}")
    if not disk.by_path:
        return usb
    port = f"  by_path: {json.dumps(disk.by_path)}"
    if f.serial:
        return [*usb, f"  # {port.strip()}  # instead: names the USB port rather than the reader"]
    return [port, *(f"  # {line.strip()}  # no serial: readers of one model look alike" for line in usb)]


def _nodes(device_dir: Path) -> tuple[list[str], list[str], list[str]]:
    """(disks, SCSI generic nodes, ttys) the kernel made below one USB device, not below its children."""
    disks, controls, ttys = [], [], []
    for parent, subdirs, _files in os.walk(device_dir):
        subdirs[:] = sorted(d for d in subdirs if not _CHILD_DEVICE.fullmatch(d))
        kind = Path(parent).name
        if kind == "block":
            disks += subdirs
        elif kind == "scsi_generic":
            controls += subdirs
        elif kind == "tty":
            ttys += subdirs
    return disks, controls, ttys


def _string(device: UsbDevice, attribute: str, fallback: Path) -> str:
    """A USB string descriptor; sysfs has it too when reading it over USB needs more rights than we have."""
    try:
        value = getattr(device, attribute)
    except (ValueError, OSError, NotImplementedError):  # pyusb: no langid, access denied, no support
        value = None
    if value is None:
        try:
            value = fallback.read_text().strip()
        except OSError:
            value = ""
    return str(value).strip()


def _size(sysfs: Path, disk: str) -> int:
    try:
        return int((sysfs / "block" / disk / "size").read_text()) * _SECTOR
    except (OSError, ValueError):
        return 0


def _link_to(folder: Path, node: str) -> str | None:
    """The name of the link in `folder` that points at /dev/`node` itself (not at one of its partitions)."""
    if not folder.is_dir():
        return None
    links = (link for link in sorted(folder.iterdir()) if link.is_symlink())
    return next((link.name for link in links if Path(os.readlink(link)).name == node), None)


def _console_name(dev: Path, tty: str) -> str:
    by_id = _link_to(dev / "serial/by-id", tty)
    return f"/dev/serial/by-id/{by_id}" if by_id else f"/dev/{tty}"
