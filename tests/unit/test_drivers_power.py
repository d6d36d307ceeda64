"""The power relay: gpiozero pin levels for on/off/cycle, either polarity, a clear error for a bad pin, and a
relay that stays as set after the driver lets go of it, across processes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from hil.drivers.power import RelayPower
from hil.errors import RigConfigError


@pytest.fixture
def factory() -> MockFactory:
    return MockFactory()


def test_on_and_off_drive_an_active_high_relay(factory: MockFactory) -> None:
    power = RelayPower(17, pin_factory=factory)
    power.on()
    assert (power.state, factory.pin(17).state) == ("on", True)
    power.off()
    assert (power.state, factory.pin(17).state) == ("off", False)


def test_an_active_low_relay_is_on_when_its_pin_is_low(factory: MockFactory) -> None:
    power = RelayPower(17, active_high=False, pin_factory=factory)
    power.on()
    assert (power.state, factory.pin(17).state) == ("on", False)


def test_opening_the_driver_leaves_the_board_as_it_was(factory: MockFactory) -> None:
    RelayPower(17, pin_factory=factory)
    assert [s.state for s in factory.pin(17).states] == [False]


def test_cycle_goes_off_then_on(factory: MockFactory) -> None:
    power = RelayPower(17, pin_factory=factory)
    power.on()
    factory.pin(17).clear_states()
    power.cycle(off_time=0.05)
    assert [s.state for s in factory.pin(17).states] == [True, False, True]
    assert power.state == "on"


def test_every_switch_is_logged_with_the_pin(factory: MockFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="hil.power")
    power = RelayPower(22, pin_factory=factory)
    power.on()
    power.off()
    assert [r.getMessage() for r in caplog.records] == ["RelayPower(pin 22): on", "RelayPower(pin 22): off"]


def test_a_pin_that_does_not_exist_is_named(factory: MockFactory) -> None:
    with pytest.raises(RigConfigError, match="RelayPower: pin 'GPIO99' cannot drive the relay"):
        RelayPower("GPIO99", pin_factory=factory)


def test_closing_the_driver_leaves_the_relay_driven_as_set(factory: MockFactory, tmp_path: Path) -> None:
    power = RelayPower(17, pin_factory=factory, record=tmp_path / "relay.json")
    power.on()
    power.close()
    pin = factory.pin(17)
    assert (pin.function, pin.state) == ("output", True)  # an input pin would leave the relay to its wiring
    again = RelayPower(17, pin_factory=factory)  # the pin is free for the next driver, and still on
    assert again.state == "on"
    again.close()
    factory.close()  # what gpiozero's exit handler does to every pin of its default factory
    assert (pin.function, pin.state) == ("output", True)


def test_a_new_driver_drives_the_level_the_last_one_left(factory: MockFactory, tmp_path: Path) -> None:
    record = tmp_path / "relay.json"
    power = RelayPower(17, active_high=False, pin_factory=factory, record=record)
    power.on()
    power.close()
    factory.reset()  # a new process: real pin factories make every pin they open an input
    assert factory.pin(17).state is False
    again = RelayPower(17, active_high=False, pin_factory=factory, record=record)
    assert (again.state, factory.pin(17).function, factory.pin(17).state) == ("on", "output", False)
    again.off()
    factory.reset()
    assert RelayPower(17, active_high=False, pin_factory=factory, record=record).state == "off"


def test_a_record_from_before_the_hosts_last_boot_is_ignored(
    factory: MockFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "relay.json"
    RelayPower(17, pin_factory=factory, record=record).on()
    factory.reset()
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("another-boot\n")
    monkeypatch.setattr("hil.drivers.power._BOOT_ID", boot_id)
    RelayPower(17, pin_factory=factory, record=record)
    assert [s.state for s in factory.pin(17).states] == [False]  # left as the reboot left it


def test_an_unreadable_record_is_ignored_with_a_warning(
    factory: MockFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = tmp_path / "relay.json"
    record.write_text("{half")
    RelayPower(17, pin_factory=factory, record=record)
    assert [s.state for s in factory.pin(17).states] == [False]
    assert any(f"ignoring the relay record {record}" in r.getMessage() for r in caplog.records)
