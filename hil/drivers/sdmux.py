"""SD muxes: give the rig's card to the host (to flash it) or to the DUT (to boot from it)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from gpiozero import GPIOZeroError, OutputDevice
from gpiozero.pins import Factory
from usbsdmux.usbsdmux import UnknownUsbSdMuxRevisionException, autoselect_driver

from hil.drivers.card import Card, CardLocator
from hil.errors import FlashError, RigConfigError

log = logging.getLogger("hil.sdmux")

MuxState = Literal["host", "dut", "off"]


class SdMux:
    """What every mux does; subclasses say how to select a side and how to read it back."""

    def __init__(self, card: CardLocator) -> None:
        self.card = card

    def to_host(self, timeout: float = 10.0) -> Card:
        """Switch the card to the host and wait until its block device has appeared (FlashError if not)."""
        self._select("host")
        log.info("%s: to host", self)
        try:
            return self.card.wait(timeout)
        except FlashError as exc:
            raise FlashError(f"{self} switched to host, but {exc}") from exc

    def to_dut(self) -> None:
        """Switch the card to the DUT."""
        self._select("dut")
        log.info("%s: to DUT", self)

    @property
    def state(self) -> MuxState:
        """The side the card is on now."""
        raise NotImplementedError

    def _select(self, side: MuxState) -> None:
        raise NotImplementedError


class GpioSdMux(SdMux):
    """The autohat's mux: one select line; `host_level` is the level that gives the card to the host."""

    def __init__(
        self, pin: int | str, host_level: bool, card: CardLocator, pin_factory: Factory | None = None
    ) -> None:
        super().__init__(card)
        self.pin, self.host_level = pin, host_level
        try:
            self._line = OutputDevice(pin, initial_value=None, pin_factory=pin_factory)
        except GPIOZeroError as exc:
            raise RigConfigError(f"GpioSdMux: pin {pin!r} cannot drive the mux: {exc}") from exc

    def __str__(self) -> str:
        return f"GpioSdMux(pin {self.pin})"

    @property
    def state(self) -> MuxState:
        """The side the select line points at."""
        return "host" if bool(self._line.value) == self.host_level else "dut"

    def _select(self, side: MuxState) -> None:
        self._line.value = self.host_level if side == "host" else not self.host_level

    def close(self) -> None:
        """Release the pin."""
        self._line.close()


class UsbSdMux(SdMux):
    """A Linux Automation USB-SD-Mux, driven through the `usbsdmux` package on its /dev/sg control node."""

    def __init__(self, control_path: str, card: CardLocator, mux: Any = None) -> None:
        super().__init__(card)
        self.control_path = control_path
        self._mux = mux

    def __str__(self) -> str:
        return f"UsbSdMux({self.control_path})"

    @property
    def state(self) -> MuxState:
        """The mode the mux reports: host, dut or off."""
        return self._device().get_mode()

    def _select(self, side: MuxState) -> None:
        if side == "host":
            self._device().mode_host()
        else:
            self._device().mode_DUT()

    def _device(self) -> Any:
        # Opened on first use: the control node exists only while the mux is plugged in.
        if self._mux is None:
            try:
                self._mux = autoselect_driver(self.control_path)
            except (UnknownUsbSdMuxRevisionException, OSError) as exc:
                raise RigConfigError(
                    f"UsbSdMux: {self.control_path} is not a usable USB-SD-Mux: {exc}"
                ) from exc
        return self._mux
