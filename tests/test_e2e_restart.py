"""A reset of the virtual board starts a fresh QEMU process: the console, the disk and the RTC carry on."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from hil.drivers.qemu import QemuBoard
from hil.provision import open_dut
from hil.rig import load_rig
from tests.e2e import reference_disk

pytestmark = [pytest.mark.qemu]


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
        transcript = dut.transcript.read_text(errors="replace")
        assert len(re.findall(r"Linux version", transcript)) == 2, "the console missed one of the two boots"

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
