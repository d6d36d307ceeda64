"""The power relay: gpiozero pin levels for on/off/cycle, either polarity, and a clear error for a bad pin."""

from __future__ import annotations

import logging

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
