"""DUT power through a relay on a GPIO pin (the autohat's relay), with gpiozero.

The relay keeps its state between hil commands, as a switch on the bench does: `hil rig power RIG on`
leaves the DUT powered. gpiozero works against that twice. Its close() (and its exit handler, which
closes every pin of its default factory) turns the pin back into an input; and every real pin factory
(lgpio, RPi.GPIO, pigpio, native) makes a pin an input when it opens it. So the driver records each level
it sets in a small file, lets go of the pin without closing it, and drives the recorded level again as
it opens the pin: the line floats only for the moment between gpiozero opening the pin and setting it,
far shorter than a relay takes to drop out. A record from before the host's last boot is ignored: a
reboot resets the pins, so the relay is as its wiring leaves it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Literal

from gpiozero import GPIOZeroError, OutputDevice
from gpiozero.pins import Factory

from hil.errors import RigConfigError
from hil.util.paths import cache_dir

log = logging.getLogger("hil.power")

PowerState = Literal["on", "off"]
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def relay_record(pin: int | str) -> Path:
    """Where the level of this host's relay on `pin` is recorded between commands."""
    return cache_dir() / "relays" / f"gpio-{pin}.json"


class RelayPower:
    """Switches the DUT's supply with a relay; `active_high` says which pin level closes the relay.

    With a `record` file the relay's state outlives the process: it is written at each switch and set
    again when the driver opens the pin.
    """

    def __init__(
        self, pin: int | str, active_high: bool = True, pin_factory: Factory | None = None,
        record: Path | None = None,
    ) -> None:  # fmt: skip
        self.pin = pin
        self.record = record
        recorded = _read_record(record) if record else None
        try:
            # Without a record the line is left as gpiozero finds it (initial_value=None).
            self._relay = OutputDevice(
                pin, active_high=active_high, initial_value=recorded, pin_factory=pin_factory
            )
        except GPIOZeroError as exc:
            raise RigConfigError(f"RelayPower: pin {pin!r} cannot drive the relay: {exc}") from exc
        if recorded is not None:
            log.info("%s: %s, as the last command left it", self, self.state)

    def __str__(self) -> str:
        return f"RelayPower(pin {self.pin})"

    def on(self) -> None:
        """Power the DUT."""
        self._relay.on()
        self._write_record()
        log.info("%s: on", self)

    def off(self) -> None:
        """Cut the DUT's power."""
        self._relay.off()
        self._write_record()
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
        """Let go of the pin, leaving the relay as it is (gpiozero's close would make the pin an input)."""
        pin = self._relay.pin
        if pin is None:
            return
        # Neither this close nor gpiozero's exit handler (which closes every pin its factory made) may
        # reach the pin's own close(): that is what resets it. See gpiozero issue 707.
        pin.close = _leave_as_is
        self._relay.close()  # drops gpiozero's reservation, so another driver may open the pin

    def _write_record(self) -> None:
        if self.record is None:
            return
        self.record.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.record.with_name(f".{self.record.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"state": self.state, "boot_id": _boot_id()}) + "\n")
        os.replace(tmp, self.record)  # a command opening the relay at this moment reads old or new


def _leave_as_is() -> None:
    """A pin close() that leaves the pin driven as it was."""


def _read_record(record: Path) -> bool | None:
    """The recorded state (True: on); None without a readable record, or with one from an earlier boot."""
    try:
        data = json.loads(record.read_text())
        state, boot = data["state"], data["boot_id"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the relay record %s: %s", record, exc)
        return None
    if boot != _boot_id():
        return None  # the host rebooted since: its pins were reset
    return {"on": True, "off": False}.get(state)


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""
