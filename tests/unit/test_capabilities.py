"""Board capabilities: each board kind declares what it has, and every probe asks through them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.capabilities import (
    CAPABILITIES,
    HostedNetwork,
    LinkControl,
    PowerRelay,
    SdMuxControl,
    SerialLine,
    declared,
    provided,
)
from hil.dut.boards import BOARD_KINDS, rig_capabilities, rig_has
from hil.dut.check import _mux, _power, _serial
from hil.lab.rig import load_rig
from tests.support.fakes.board import FakeBoard

ROOT = Path(__file__).resolve().parents[2]


def test_each_board_kind_declares_what_it_really_has() -> None:
    kinds = {kind: declared(spec.board_class()) for kind, spec in BOARD_KINDS.items()}
    assert kinds["qemu"] == {
        "link-control", "network-capture", "rtc-control", "hosted-network", "boot-snapshots", "boot-counter"
    }  # fmt: skip
    assert kinds["autohat"] == {"power-relay", "sd-mux", "serial-line"}
    # The twin is an autohat rig whose network hil runs; it cannot unplug a cable a real rig could not.
    assert kinds["twin"] == kinds["autohat"] | {"hosted-network"}


def test_the_arm64_board_has_exactly_the_capabilities_of_the_x86_board() -> None:
    arm, x86 = (load_rig(ROOT / "rigs" / f"{name}.yaml") for name in ("qemu-arm64", "qemu-x86_64"))
    assert rig_capabilities(arm) == rig_capabilities(x86)
    assert rig_has(arm, HostedNetwork) and not rig_has(arm, PowerRelay)


def test_a_board_without_a_capability_is_not_given_as_one(tmp_path: Path) -> None:
    board = FakeBoard(tmp_path)
    assert provided(board, SdMuxControl) is None
    assert provided(board, LinkControl) is None


def test_a_board_declaring_a_capability_is_given_typed_as_it() -> None:
    class Relayed(FakeBoard):
        provides = (PowerRelay,)
        off_time = 2.0

        def relay(self) -> str:
            return "the relay"

    board = Relayed(Path("/nonexistent"))
    relayed = provided(board, PowerRelay)
    assert relayed is board and relayed.relay() == "the relay"


def test_a_declared_capability_without_its_method_is_refused() -> None:
    class Liar:
        provides = (SerialLine,)

    with pytest.raises(TypeError, match=r"Liar declares serial-line but has no serial_port\(\)"):
        declared(Liar)


def test_rig_check_skips_the_hardware_steps_of_a_board_without_that_hardware(tmp_path: Path) -> None:
    board = FakeBoard(tmp_path)
    assert _power(board) == "no relay on this rig (virtual board)"
    assert _mux(board) == "no SD mux on this rig (virtual board)"
    assert _serial(board).startswith("console is QEMU's serial socket")
    assert board.power_ons == 0


def test_every_capability_has_a_distinct_name() -> None:
    assert set(CAPABILITIES) >= {"power-relay", "sd-mux", "serial-line", "hosted-network", "link-control"}
