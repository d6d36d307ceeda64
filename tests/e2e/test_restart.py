"""A reset of the virtual board starts a fresh QEMU process: the console, the disk and the RTC carry on."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from hil.drivers.qemu.board import QemuBoard
from hil.dut import Dut
from hil.dut.provision import open_dut
from hil.lab.rig import load_rig
from hil.probes.queries import read_clock
from tests.support.e2e import reference_disk

pytestmark = [pytest.mark.qemu]


def _kernels_started(dut: Dut) -> int:
    return len(re.findall(r"Linux version", dut.transcript.read_text(errors="replace")))


def test_a_guest_reboot_restarts_qemu_with_its_disk_rtc_and_console(tmp_path: Path) -> None:
    dut = open_dut(load_rig("qemu-x86_64"), tmp_path / "art")
    board = dut.board
    assert isinstance(board, QemuBoard)
    try:
        dut.flash(reference_disk())
        dut.boot()
        first = board.pid
        # The guest sets its RTC a decade ahead and leaves a file on its data partition.
        dut.run("date -u -s '2036-02-03 04:05:06' >/dev/null && hwclock -w -u").check()
        dut.run("echo kept >/mnt/data/m && sync").check()
        dut.reboot()
        assert board.pid != first, "the reboot did not start a new QEMU process"
        assert dut.run("cat /mnt/data/m").check().output.strip() == "kept"
        rtc = dut.run("hwclock -r -u").check().output
        assert "2036" in rtc, f"the RTC did not carry over the restart: {rtc!r}"
        uptime = float(dut.run("cut -d' ' -f1 /proc/uptime").check().output)
        assert uptime < 120, f"uptime {uptime} s: the DUT did not really reboot"
        assert _kernels_started(dut) == 2, "the console missed one of the two boots"

        assert dut.console is not None
        dut.console.sendline("poweroff")
        deadline = time.monotonic() + 120
        while board.exit_reason() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "powered itself off" in (board.exit_reason() or ""), board.exit_reason()
        assert not board.is_on
    finally:
        dut.close()
    assert not board.is_on


def test_a_fresh_dut_restored_from_a_snapshot_is_the_freshly_booted_dut_again(tmp_path: Path) -> None:
    dut = open_dut(load_rig("qemu-x86_64"), tmp_path / "art")
    try:
        dut.fresh(reference_disk())
        assert len(dut.boots) == 1 and dut.restores == []
        host_key = dut._pin.key
        # The test changes the device: a file, and its clock a day behind.
        dut.run("echo dirty >/mnt/data/m && sync && date -u -s @$(($(date +%s) - 86400))").check()

        dut.fresh(reference_disk())
        assert len(dut.boots) == 1 and len(dut.restores) == 1, "the second fresh DUT booted instead"
        assert _kernels_started(dut) == 1, "the restore booted a kernel"
        assert not dut.run("test -e /mnt/data/m").ok, "the restore kept what the last test wrote"
        assert dut._pin.key == host_key
        clock = read_clock(dut)
        assert clock.within(1.0), f"the restored clock is {clock.offset:+.2f} s off the host's"
        assert dut.console_run("echo console-ok").check().output.strip() == "console-ok"

        dut.reboot()  # a restored DUT boots for real when asked to
        assert len(dut.boots) == 2 and _kernels_started(dut) == 2
    finally:
        dut.close()
    assert not dut.board.is_on
