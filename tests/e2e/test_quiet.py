"""A DUT whose kernel prints nothing on the serial console, as production balenaOS boots (`console=null
quiet`): the reference image's `quiet` variant. hil sees it reboot without the kernel's "reboot: Restarting
system", by the board's count of boots, logs in on the serial getty after every boot, and each reboot and
power cycle brings a new boot id."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from hil.console.text import KERNEL_LINE
from hil.console.transcript import raw_bytes
from hil.dut import Dut
from hil.dut.provision import open_dut
from hil.images.builders.reference import build_reference
from hil.lab.rig import load_rig

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

BOOT_ID = "cat /proc/sys/kernel/random/boot_id"


def _boot_id(dut: Dut) -> str:
    boot_id = dut.run(BOOT_ID).check().output.strip()
    assert boot_id == dut.boot_id, "the DUT's boot id is not the one hil read as SSH came up"
    return boot_id


def test_a_quiet_dut_reboots_and_power_cycles_with_no_kernel_line_on_its_console(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hil.dut")
    image = build_reference("1.0.0", "quiet").disk
    dut = open_dut(load_rig("qemu-x86_64"), tmp_path / "art")
    try:
        dut.flash(image)
        dut.boot()
        cmdline = dut.run("cat /proc/cmdline").check().output
        assert "quiet" in cmdline and "console=ttyS0" not in cmdline, cmdline
        ids = [_boot_id(dut)]

        dut.request_reboot()
        dut.wait_for_reboot("a quiet reboot")
        ids.append(_boot_id(dut))
        seen = [r.getMessage() for r in caplog.records if "restart seen by the" in r.getMessage()]
        assert seen == [f"{dut.rig.name}: restart seen by the board"], seen

        dut.power_cycle()
        ids.append(_boot_id(dut))
        assert len(set(ids)) == 3, f"a boot id did not change: {ids}"
        assert len(dut.boots) == 3
    finally:
        dut.close()
    assert not dut.board.is_on

    console = raw_bytes(dut.transcript.read_bytes()).decode(errors="replace").replace("\r", "")
    assert console.count("login:") >= 3, "the serial getty did not offer a login after every boot"
    kernel = re.findall(KERNEL_LINE, console)
    assert kernel == [], f"the kernel printed on the serial console: {kernel[:5]}"
    assert "Linux version" not in console and "Restarting system" not in console
