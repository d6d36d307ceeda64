"""SD muxes: switching to the host waits until the card really appears (no fixed sleep), or says why not."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from hil.drivers.card import CardIdentity
from hil.drivers.fake_sysfs import FakeBlockTree
from hil.drivers.sdmux import GpioSdMux, UsbSdMux
from hil.errors import FlashError, RigConfigError

READER = CardIdentity(vendor_id="0424", product_id="4041", serial="000000264001")
HOST_LEVEL = False  # the autohat selects the host with a low line


class MuxWiredPin(MockPin):
    """A mock select line wired to the fake card reader: the card shows up on the host a little later."""

    def __init__(self, factory: MockFactory, info: object, tree: FakeBlockTree) -> None:
        super().__init__(factory, info)
        self.tree = tree

    def _change_state(self, value: bool) -> bool:
        changed = super()._change_state(value)
        if changed and self.function == "output":
            threading.Timer(0.2, self._follow).start()
        return changed

    def _follow(self) -> None:
        # The line's level when the card settles, not when it was switched: timers may fire out of order.
        self.tree.set_media("sda", self.state == HOST_LEVEL)


@pytest.fixture
def tree(tmp_path: Path) -> FakeBlockTree:
    tree = FakeBlockTree(tmp_path)
    tree.add_usb_disk("sda", vendor_id="0424", product_id="4041", serial="000000264001", size_bytes=1 << 30)
    tree.set_media("sda", present=False)
    return tree


def test_gpio_mux_to_host_returns_once_the_card_is_visible(tree: FakeBlockTree) -> None:
    factory = MockFactory()
    line = factory.pin(5, pin_class=MuxWiredPin, tree=tree)
    line.function, line.state = "output", not HOST_LEVEL  # the card starts on the DUT side
    mux = GpioSdMux(5, host_level=HOST_LEVEL, card=tree.locator(READER), pin_factory=factory)
    card = mux.to_host(timeout=10)
    assert (card.name, mux.state, factory.pin(5).state) == ("sda", "host", HOST_LEVEL)
    mux.to_dut()
    assert (mux.state, factory.pin(5).state) == ("dut", not HOST_LEVEL)


def test_gpio_mux_names_what_it_waited_for_when_no_card_appears(tree: FakeBlockTree) -> None:
    mux = GpioSdMux(5, host_level=HOST_LEVEL, card=tree.locator(READER), pin_factory=MockFactory())
    with pytest.raises(
        FlashError,
        match=r"GpioSdMux\(pin 5\) switched to host, but card reader usb 0424:4041 serial 000000264001: "
        r"no card appeared under .*/sys/block within 0.3 s",
    ):
        mux.to_host(timeout=0.3)


def test_gpio_mux_on_a_pin_that_does_not_exist_is_named(tree: FakeBlockTree) -> None:
    with pytest.raises(RigConfigError, match="GpioSdMux: pin 'GPIO99' cannot drive the mux"):
        GpioSdMux("GPIO99", host_level=True, card=tree.locator(READER), pin_factory=MockFactory())


class FakeUsbSdMux:
    """Stands in for usbsdmux's driver object (the hardware is absent): modes, and the card follows."""

    def __init__(self, tree: FakeBlockTree) -> None:
        self.tree, self.mode = tree, "off"

    def get_mode(self) -> str:
        return self.mode

    def mode_host(self) -> None:
        self.mode = "host"
        threading.Timer(0.2, self.tree.set_media, args=("sda", True)).start()

    def mode_DUT(self) -> None:
        self.mode = "dut"
        self.tree.set_media("sda", False)


def test_usb_sd_mux_to_host_and_back(tree: FakeBlockTree) -> None:
    mux = UsbSdMux("/dev/sg1", card=tree.locator(READER), mux=FakeUsbSdMux(tree))
    assert mux.state == "off"
    assert mux.to_host(timeout=10).name == "sda"
    assert mux.state == "host"
    mux.to_dut()
    assert mux.state == "dut"
    assert tree.locator(READER).find() is None


def test_usb_sd_mux_on_a_node_that_is_no_mux_is_named(tree: FakeBlockTree) -> None:
    mux = UsbSdMux("/dev/sg-nowhere", card=tree.locator(READER))
    with pytest.raises(RigConfigError, match="UsbSdMux: /dev/sg-nowhere is not a usable USB-SD-Mux"):
        mux.to_host()
