"""The digital-twin rig: the autohat drivers, unchanged, wired to a QEMU board instead of hardware.

gpiozero's MockFactory pins stand in for the relay and mux lines; a pin change does what the hardware
would: the relay starts or stops the QEMU board, the mux hands the card (a file behind a fake USB card
reader in a fake sysfs) to the host or to the board. QEMU's serial port is a pty under a fake
/dev/serial/by-id name, read with pyserial. Pulling the card from a running board cuts its power,
so the host can never write a card the board is using.

Power between commands: the relay's level is recorded beside the card, as a real relay stays as set,
but the board (QEMU) runs only inside the hil process that has the twin open, under its lease, and
stops when that process ends, so no QEMU is ever left behind. `hil rig power twin on` records "on";
the next process to open the twin (`hil rig console`, a test session, a command inside `hil rig hold`)
finds the relay closed and starts the board.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gpiozero.pins.mock import MockFactory, MockPin

from hil.drivers.autohat import AutohatBoard, WriteGuard
from hil.drivers.capabilities import HostedNetwork
from hil.drivers.card import CardIdentity
from hil.drivers.config_json import ConfigPlace
from hil.drivers.fake_sysfs import FakeBlockTree
from hil.drivers.power import RelayPower
from hil.drivers.qemu.board import QemuBoard
from hil.drivers.qemu.machine import Machine
from hil.drivers.sdmux import GpioSdMux
from hil.util.paths import cache_dir

log = logging.getLogger("hil.twin")
CARD = "sda"


class TwinPinFactory(MockFactory):
    """A MockFactory whose output pins tell the twin when their level changes."""

    def __init__(self) -> None:
        super().__init__(pin_class=TwinPin)
        self.listeners: dict[MockPin, Callable[[bool], None]] = {}


class TwinPin(MockPin):
    """A mock pin that reports each real level change to its listener, as the wire would."""

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        listener = self.factory.listeners.get(self)
        if changed and listener is not None:
            listener(value)
        return changed


@dataclass(frozen=True)
class TwinWiring:
    """What a twin rig file says, as plain values: its QEMU board, relay and mux pins, and the card reader
    the card file poses as."""

    machine: Machine
    power_pin: int | str
    active_high: bool
    off_time: float
    mux_pin: int | str
    host_level: bool
    card: CardIdentity
    card_bytes: int
    device_type: str
    shutdown_timeout: float


class TwinBoard(AutohatBoard):
    """An AutohatBoard whose hardware is a QEMU board, a card file and a pty."""

    # What an autohat rig has, and the network of its QEMU board, which hil runs on this host.
    provides = (*AutohatBoard.provides, HostedNetwork)

    def __init__(
        self,
        name: str,
        spec: TwinWiring,
        workdir: Path,
        artifacts: Path,
        ssh_guest_port: int,
        guard: WriteGuard,
        config_place: ConfigPlace | None,
    ) -> None:
        self.spec = spec
        self.lab = FakeBlockTree(workdir / "lab")
        # The card outlives the process, as a real one does: `hil rig flash` then `hil rig console` see it.
        self.card_file = cache_dir() / "twin" / name / "card.img"
        self.card_file.parent.mkdir(parents=True, exist_ok=True)
        self.relay_record = self.card_file.with_name("relay.json")
        identity = spec.card
        self.lab.add_usb_disk(
            CARD, vendor_id=identity.vendor_id or "0bda", product_id=identity.product_id or "0109",
            serial=identity.serial or "HIL-TWIN", size_bytes=spec.card_bytes, backing=self.card_file,
        )  # fmt: skip
        self.serial_link = self.lab.dev / "serial/by-id/usb-hil_twin_console-if00-port0"
        self.serial_link.parent.mkdir(parents=True)
        self.qemu = QemuBoard(name, spec.machine, workdir, artifacts, ssh_guest_port, serial="pty")
        factory = TwinPinFactory()
        power_pin = factory.pin(spec.power_pin)
        mux_pin = factory.pin(spec.mux_pin)
        factory.listeners[mux_pin] = self._mux_line
        self._mux_pin = mux_pin
        self._mux_line(mux_pin.state)  # the card starts wherever the line rests
        mux = GpioSdMux(spec.mux_pin, spec.host_level, self.lab.locator(identity), pin_factory=factory)
        super().__init__(
            name,
            power=RelayPower(spec.power_pin, spec.active_high, pin_factory=factory, record=self.relay_record),
            mux=mux,
            console_port=str(self.serial_link),
            baudrate=115200,
            ssh_host="127.0.0.1",
            ssh_port=0,
            max_card_bytes=spec.card_bytes,
            device_type=spec.device_type,
            off_time=spec.off_time,
            guard=guard,
            config_place=config_place,
        )
        factory.listeners[power_pin] = self._power_line
        if self.power.state == "on":  # the relay rests closed, as the last command left it
            self._power_line(bool(power_pin.state))

    def host_address(self) -> str:
        """The address at which the twin's DUT reaches this host (its QEMU board's user networking)."""
        return self.qemu.host_address()

    @property
    def card_on_host(self) -> bool:
        """Where the mux line puts the card now."""
        return bool(self._mux_pin.state) == self.spec.host_level

    def _power_line(self, level: bool) -> None:
        if level == self.spec.active_high:
            # A board whose card is on the host has no disk: it powers up and finds nothing to boot.
            self.qemu.attach_disk(None if self.card_on_host else self.card_file, "raw")
            self.qemu.power_on(time.monotonic() + 60)
            self.ssh_port = self.qemu.ssh_port  # the lab LAN of a twin is QEMU's forward, new each power-on
            self.serial_link.unlink(missing_ok=True)
            assert self.qemu.pty_path is not None
            self.serial_link.symlink_to(self.qemu.pty_path)
            log.info("%s: relay closed: board on, console %s", self.name, self.qemu.pty_path)
        else:
            self.qemu.power_off(self.spec.shutdown_timeout)
            self.serial_link.unlink(missing_ok=True)  # as udev removes the by-id link of a vanished tty
            log.info("%s: relay open: board off", self.name)

    def _mux_line(self, level: bool) -> None:
        to_host = level == self.spec.host_level
        if to_host and self.qemu.is_on:
            log.warning("%s: card pulled from a running board: the board loses power", self.name)
            self.qemu.power_off(self.spec.shutdown_timeout)
        self.lab.set_media(CARD, to_host)

    def exit_reason(self) -> str | None:
        """QEMU's death, when it died."""
        return self.qemu.exit_reason()

    def close(self) -> None:
        """Stop the board, release the pins, remove the fake lab (the card and the relay's record stay)."""
        super().close()
        self.qemu.close()
