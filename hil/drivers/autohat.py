"""A physical rig's board: relay power, an SD mux with its card reader, a serial line, SSH over the lab LAN.

Composed from one small driver per piece of hardware; the twin rig builds the same class on mock
pins, a fake card reader and a pty, so this code path is what CI exercises.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar, Protocol

from hil.console.transport import Transport
from hil.console.uart import SerialTransport
from hil.drivers.capabilities import PowerRelay, SdMuxControl, SerialLine
from hil.drivers.config_json import ConfigPlace, write_config_json
from hil.drivers.flasher import flash_card
from hil.drivers.power import RelayPower
from hil.drivers.progress import auto_progress
from hil.drivers.sdmux import SdMux

log = logging.getLogger("hil.autohat")


class WriteGuard(Protocol):
    """Keeps, outside this process, that a card is being written: so that pools skip a rig whose card a
    dead process left half-written, until a later flash clears it."""

    def writing(self, image: Path) -> None:
        """The first byte of `image` is about to be written."""
        ...

    def written(self, image: Path) -> None:
        """`image` is on the card, verified and configured."""
        ...


class AutohatBoard:
    """Flash through the mux, power through the relay, talk through the serial line."""

    provides: ClassVar[tuple[type, ...]] = (PowerRelay, SdMuxControl, SerialLine)

    def __init__(
        self, name: str, *, power: RelayPower, mux: SdMux, console_port: str, baudrate: int,
        ssh_host: str, ssh_port: int, max_card_bytes: int, device_type: str, off_time: float,
        guard: WriteGuard, config_place: ConfigPlace | None,
    ) -> None:  # fmt: skip
        self.name = name
        self.power = power
        self.mux = mux
        self.console_port = console_port
        self.baudrate = baudrate
        self.ssh_host = ssh_host
        self.ssh_port = ssh_port
        self.max_card_bytes = max_card_bytes
        self.device_type = device_type
        self.off_time = off_time
        self.guard = guard
        self.config_place = config_place  # None: the OS reads no config.json
        self.verify = True  # read every written byte back; `hil rig flash --no-verify` turns it off

    def flash(self, image: Path, config: dict[str, Any]) -> None:
        """Power off, card to host, refuse a wrong card or image, write, verify, configure, card back.

        From the first byte written until the card is verified and configured, the rig's health says its
        card is half-written, so pools skip it even if this process dies mid-write; success clears it.
        """
        self.power.off()
        card = self.mux.to_host(timeout=30)
        log.info("%s: card %s (%d bytes) is on the host", self.name, card.device, card.size_bytes)
        checked = self.mux.card
        flash_card(
            image, checked, card.device, max_bytes=self.max_card_bytes, device_type=self.device_type,
            progress=auto_progress(f"flash {self.name}"), verify=self.verify,
            before_write=lambda: self.guard.writing(image),
        )  # fmt: skip
        if self.config_place is not None:
            check = lambda fd: checked.check_node(card, fd)  # noqa: E731
            write_config_json(card.device, config, self.config_place, target_check=check)
        self.guard.written(image)
        self.mux.to_dut()

    def power_on(self, deadline: float) -> None:
        """Card to the DUT (a board never boots with its card on the host), then power."""
        if self.mux.state != "dut":
            self.mux.to_dut()
        self.power.on()

    def relay(self) -> RelayPower:
        """The power relay (capability power-relay)."""
        return self.power

    def sd_mux(self) -> SdMux:
        """The SD mux (capability sd-mux)."""
        return self.mux

    def serial_port(self) -> str:
        """The console's serial device (capability serial-line)."""
        return self.console_port

    def power_off(self, grace: float = 10.0) -> None:
        """Open the relay."""
        self.power.off()

    def console_transport(self, timeout: float) -> Transport:
        """The serial line; it survives the USB adapter dropping out and coming back."""
        return SerialTransport(self.console_port, self.baudrate, reconnect_timeout=max(timeout, 5.0))

    def exit_reason(self) -> str | None:
        """A physical board does not die on its own in a way the host can see."""
        return None

    def close(self) -> None:
        """Let go of the hardware leaving the relay as it is: a board stays powered after `hil rig power on`.

        A session that must end with the board off (the pytest plugin) powers it off before (Dut.close).
        """
        self.power.close()
        close = getattr(self.mux, "close", None)
        if close is not None:
            close()
