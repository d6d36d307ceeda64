"""DUT power through a relay on a GPIO pin (the autohat's relay), with gpiozero."""

from __future__ import annotations

import logging
import time
from typing import Literal

from gpiozero import GPIOZeroError, OutputDevice
from gpiozero.pins import Factory

from hil.errors import RigConfigError

log = logging.getLogger("hil.power")

PowerState = Literal["on", "off"]


class RelayPower:
    """Switches the DUT's supply with a relay; `active_high` says which pin level closes the relay."""

    def __init__(self, pin: int | str, active_high: bool = True, pin_factory: Factory | None = None) -> None:
        self.pin = pin
        try:
            # initial_value=None: opening the driver must not switch the board (`hil rig list` opens it too).
            self._relay = OutputDevice(
                pin, active_high=active_high, initial_value=None, pin_factory=pin_factory
            )
        except GPIOZeroError as exc:
            raise RigConfigError(f"RelayPower: pin {pin!r} cannot drive the relay: {exc}") from exc

    def __str__(self) -> str:
        return f"RelayPower(pin {self.pin})"

    def on(self) -> None:
        """Power the DUT."""
        self._relay.on()
        log.info("%s: on", self)

    def off(self) -> None:
        """Cut the DUT's power."""
        self._relay.off()
        log.info("%s: off", self)

    def cycle(self, off_time: float = 1.0) -> None:
        """Off, wait `off_time` seconds for the supply to drain, on."""
        self.off()
        time.sleep(off_time)
        self.on()

    @property
    def state(self) -> PowerState:
        """Whether the relay powers the DUT now."""
        return "on" if self._relay.value else "off"

    def close(self) -> None:
        """Release the pin."""
        self._relay.close()
