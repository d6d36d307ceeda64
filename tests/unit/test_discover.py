"""`hil rig discover` lists the USB card readers, SD muxes and serial adapters a rig file can name, as YAML
that validates and finds the same hardware again; with no USB access it says so in one line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import usb.backend.libusb0
import usb.backend.libusb1
import usb.backend.openusb
import usb.core
import yaml

from hil.commands import rig as rig_command
from hil.drivers.card import CardIdentity
from hil.drivers.fake_sysfs import FakeBlockTree
from hil.errors import HilError, ToolMissing
from hil.lab.discover import discover, render, usb_devices
from hil.lab.rig import CardSpec, ConsoleSpec, MuxSpec


@dataclass
class FakeUsbDevice:
    """What pyusb reports of one device; `serial=None` acts as a host that may not read string descriptors."""

    idVendor: int
    idProduct: int
    bus: int
    port_numbers: tuple[int, ...] | None
    serial: str | None = None
    name: str | None = None

    @property
    def serial_number(self) -> str | None:
        if self.serial is None:
            raise ValueError("The device has no langid (permission denied?)")
        return self.serial

    @property
    def product(self) -> str | None:
        return self.name


@pytest.fixture
def lab(tmp_path: Path) -> tuple[FakeBlockTree, list[FakeUsbDevice]]:
    """A reader with a card, a USB-SD-Mux without one, an FTDI cable, and things a rig never names."""
    tree = FakeBlockTree(tmp_path / "lab")
    card_bytes = 31_900_000_000  # a "32 GB" card
    tree.add_usb_disk(
        "sda", vendor_id="05e3", product_id="0751", serial="000000001206", size_bytes=card_bytes
    )
    tree.add_usb_disk("sdb", vendor_id="0424", product_id="4041", serial="000000000815", size_bytes=0, port=2)
    tree.add_scsi_generic("sdb", "sg1")
    tree.add_usb_serial("ttyUSB0", vendor_id="0403", product_id="6001", serial="FT0001", port=3,
                        by_id="usb-FTDI_TTL232R-3V3_FT0001-if00-port0")  # fmt: skip
    tree.add_internal_disk("vda", size_bytes=10 << 30)
    devices = [
        FakeUsbDevice(0x1D6B, 0x0002, 1, None),  # the root hub
        FakeUsbDevice(0x046D, 0xC31C, 1, (4,), "K120", "USB Keyboard"),  # no sysfs nodes a rig names
        FakeUsbDevice(0x0403, 0x6001, 1, (3,), "FT0001", "TTL232R-3V3"),
        FakeUsbDevice(0x0424, 0x4041, 1, (2,), None, "usb-sd-mux"),  # its serial only sysfs tells
        FakeUsbDevice(0x05E3, 0x0751, 1, (1,), "000000001206", "USB Storage"),
    ]
    return tree, devices


def test_readers_muxes_and_serial_adapters_are_found_with_their_nodes(lab) -> None:
    tree, devices = lab
    found = discover(devices, tree.sysfs, tree.dev)
    assert [(f.kind, f.port) for f in found] == [
        ("card reader", "1-1"), ("USB-SD-Mux", "1-2"), ("serial adapter", "1-3")
    ]  # fmt: skip
    reader, mux, cable = found
    assert (reader.vendor_id, reader.product_id, reader.serial, reader.product) == (
        "05e3", "0751", "000000001206", "USB Storage"
    )  # fmt: skip
    assert [(d.name, d.size_bytes, d.by_path) for d in reader.disks] == [
        ("sda", 31_899_999_744, "pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0")
    ]
    assert (mux.serial, mux.controls, mux.disks[0].size_bytes) == ("000000000815", ("/dev/sg1",), 0)
    assert cable.consoles == ("/dev/serial/by-id/usb-FTDI_TTL232R-3V3_FT0001-if00-port0",)


def test_the_yaml_validates_as_rig_fields_and_names_the_same_card_again(lab) -> None:
    tree, devices = lab
    documents = list(yaml.safe_load_all(render(discover(devices, tree.sysfs, tree.dev))))
    reader, mux, cable = documents
    card = CardSpec(**reader["card"])
    assert (card.vendor_id, card.product_id, card.serial, card.by_path) == (
        "05e3",
        "0751",
        "000000001206",
        None,
    )
    assert int(card.max_size) == 32 * 10**9
    found = tree.locator(CardIdentity(card.vendor_id, card.product_id, card.serial)).find()
    assert found is not None and found.name == "sda"
    assert MuxSpec(**mux["sd_mux"]).control == "/dev/sg1"
    assert CardSpec(**mux["card"]).serial == "000000000815"
    assert ConsoleSpec(**cable["console"]).port == "/dev/serial/by-id/usb-FTDI_TTL232R-3V3_FT0001-if00-port0"


def test_a_reader_without_a_serial_number_is_named_by_its_port(tmp_path: Path) -> None:
    tree = FakeBlockTree(tmp_path / "lab")
    tree.add_usb_disk("sda", vendor_id="14cd", product_id="125d", serial="", size_bytes=8 << 30, port=5)
    [document] = yaml.safe_load_all(render(discover([FakeUsbDevice(0x14CD, 0x125D, 1, (5,), "")], tree.sysfs,
                                                    tree.dev)))  # fmt: skip
    card = CardSpec(**document["card"])
    assert (card.by_path, card.vendor_id) == ("pci-0000:00:14.0-usb-0:5:1.0-scsi-0:0:0:0", None)
    assert tree.locator(CardIdentity(by_path=card.by_path)).find() is not None


def test_no_libusb_backend_is_one_line_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    for backend in (usb.backend.libusb1, usb.backend.libusb0, usb.backend.openusb):
        monkeypatch.setattr(backend, "get_backend", lambda *args, **kwargs: None)
    with pytest.raises(ToolMissing) as info:
        usb_devices()
    assert str(info.value) == "no USB access: pyusb finds no libusb backend (apt-get install libusb-1.0-0)"


def test_a_usb_bus_the_host_may_not_read_is_one_line() -> None:
    class Denied:
        def enumerate_devices(self):
            raise usb.core.USBError("Access denied (insufficient permissions)", errno=13)

    with pytest.raises(HilError, match=r"^no USB access: pyusb cannot list the USB devices: .*Access denied"):
        usb_devices(Denied())


@pytest.mark.parametrize(
    ("devices", "line"),
    [
        ([], "pyusb sees no USB devices on this host: no card reader, SD mux or serial adapter to list"),
        ([FakeUsbDevice(0x046D, 0xC31C, 1, (4,))], "none of the 1 USB devices pyusb sees is a card reader"),
    ],
)
def test_the_command_says_in_one_line_when_there_is_nothing_to_list(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], devices: list, line: str
) -> None:
    monkeypatch.setattr("hil.lab.discover.usb_devices", lambda: devices)
    assert rig_command._discover(None) == 0  # type: ignore[arg-type]
    [printed] = capsys.readouterr().out.splitlines()
    assert printed.startswith(line)
