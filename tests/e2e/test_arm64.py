"""End to end on the 64-bit Arm virtual board: the arm64 reference image, built from Debian's arm64
packages on this host, boots through AAVMF and its own GRUB, and the boot suite passes on it unchanged."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.images.builders.reference import build_reference
from tests.support.e2e import leftover_disks, qemu_pids, run_suites

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.mark.timeout(1800)
def test_boot_suite_passes_on_the_arm64_board(tmp_path: Path) -> None:
    disk = build_reference("1.0.0", arch="aarch64", log=lambda line: None).disk
    out, junit = run_suites(tmp_path, "qemu-arm64", disk, "suites/boot", timeout=1700)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    root = ET.parse(junit).getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert (props["hil.rig"], props["hil.device_type"]) == ("qemu-arm64", "generic-aarch64")
    assert props["hil.os_version"] == "1.0.0"
    assert len(list(root.iter("testcase"))) >= 9
    console = (tmp_path / "art" / "qemu-arm64" / "console.log").read_text(errors="replace")
    assert "login:" in console and "console=ttyAMA0" in console  # the kernel on the PL011 UART
    assert qemu_pids(tmp_path) == [] and leftover_disks(tmp_path) == []
