"""The DUT state machine alone, with steps that only record themselves: in milliseconds, the order it walks
the states in, the fail-fast rule, an SSH failure that breaks READY only, a board's death named instead of
its symptom, and a reflash that recovers only an image that had booted."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.dut.machine import Machine, State, Steps
from hil.errors import DutBroken, HilError, QemuError, SshError

IMAGE = Path("/images/os.img")


class Board:
    """Steps that record what they did; a step fails with the error a test puts in `fails`."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.fails: dict[str, HilError] = {}
        self.died: str | None = None
        self.machine = Machine("bench", Steps(self.power_on, self.connect, self.close, self.down), self.why)

    def _step(self, name: str) -> None:
        self.done.append(name)
        if name in self.fails:
            raise self.fails[name]

    def power_on(self) -> None:
        self._step("power on")
        self.machine.booted()

    def connect(self) -> None:
        self._step("ssh")
        self.machine.ready()

    def close(self) -> None:
        self._step("close ssh")

    def down(self) -> None:
        self._step("power off")
        self.machine.powered_down()

    def why(self) -> str | None:
        return self.died


def test_a_transition_walks_the_states_in_order_and_is_a_no_op_when_there() -> None:
    board = Board()
    board.machine.flashed(IMAGE)
    board.machine.transition(State.READY)
    board.machine.transition(State.READY)
    assert board.done == ["power on", "ssh"] and board.machine.state == State.READY
    board.machine.transition(State.BOOTED)
    board.machine.transition(State.OFF)  # nothing below FLASHED while an image is on the disk
    assert board.done[2:] == ["close ssh", "power off"] and board.machine.state == State.FLASHED


def test_nothing_flashed_is_said_and_breaks_the_dut() -> None:
    board = Board()
    with pytest.raises(HilError, match=r"nothing flashed on bench: call dut.flash\(image\) first"):
        board.machine.transition(State.BOOTED)
    assert board.done == []


def test_a_failed_power_on_breaks_the_dut_and_later_transitions_fail_at_once_with_the_reason() -> None:
    board = Board()
    board.fails["power on"] = HilError("the relay did not click")
    board.machine.flashed(IMAGE)
    with pytest.raises(HilError, match="relay"):
        board.machine.transition(State.READY)
    with pytest.raises(DutBroken, match="broken since an earlier failure: HilError: the relay did not click"):
        board.machine.transition(State.BOOTED)
    assert board.done == ["power on"]
    board.machine.flashed(IMAGE)  # this image never booted: a reflash does not mend the DUT
    with pytest.raises(DutBroken):
        board.machine.transition(State.BOOTED)


def test_a_failed_ssh_breaks_ready_only() -> None:
    board = Board()
    board.fails["ssh"] = SshError("no SSH session")
    board.machine.flashed(IMAGE)
    with pytest.raises(SshError):
        board.machine.transition(State.READY)
    assert board.machine.state == State.BOOTED and board.machine.broken is None
    board.machine.transition(State.BOOTED)
    with pytest.raises(DutBroken, match="no SSH on bench since an earlier failure: SshError: no SSH session"):
        board.machine.transition(State.READY)
    assert board.done == ["power on", "ssh"]
    board.machine.flashed(IMAGE)  # a reflash tries SSH afresh
    del board.fails["ssh"]
    board.machine.transition(State.READY)


def test_a_board_that_died_is_named_instead_of_the_symptom_and_breaks_even_an_ssh_step() -> None:
    board = Board()
    board.fails["ssh"] = SshError("connection reset")
    board.died = "QEMU was killed (signal 9)"
    board.machine.flashed(IMAGE)
    with pytest.raises(QemuError, match=r"QEMU was killed \(signal 9\)"):
        board.machine.transition(State.READY)
    assert board.machine.broken == "QemuError: QEMU was killed (signal 9)"


def test_a_reflash_recovers_a_dut_whose_image_had_booted() -> None:
    board = Board()
    board.machine.flashed(IMAGE)
    board.machine.transition(State.BOOTED)
    board.fails["power on"] = HilError("wedged")
    board.machine.transition(State.FLASHED)
    with pytest.raises(HilError):
        board.machine.transition(State.BOOTED)
    del board.fails["power on"]
    board.machine.flashed(IMAGE)
    board.machine.transition(State.BOOTED)
    assert board.machine.broken is None
