"""End to end on a real QEMU board: the networking and time-sync suites pass on the reference image, and the
broken variants fail the right suite with a diagnosis naming what is missing, well within their bounds."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.images.builders.reference import build_reference
from hil.os import get_profile
from tests.support.e2e import leftover_disks, qemu_pids, reference_disk, run_suites, write_rig

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def _run_suites(tmp_path: Path, image: Path, *suites: str, timeout: float) -> tuple[str, int, Path]:
    rig = write_rig(tmp_path, "qemu-net-time", boot_timeout=180)  # its own lease: no wait for other e2e runs
    out, junit = run_suites(tmp_path, str(rig), image, *suites, timeout=timeout)
    assert qemu_pids(tmp_path) == []
    assert leftover_disks(tmp_path) == []
    return out.stdout + out.stderr, out.returncode, junit


@pytest.mark.timeout(1000)  # above the inner run's own 900 s, which kills it and reports
def test_networking_and_time_sync_pass_on_the_reference_image(tmp_path: Path) -> None:
    output, status, junit = _run_suites(
        tmp_path, reference_disk(), "suites/networking", "suites/time_sync", timeout=900
    )
    assert status == 0, output[-5000:]
    root = ET.parse(junit).getroot()
    suites = {p.get("value") for p in root.iter("property") if p.get("name") == "hil.suite"}
    assert suites == {"networking", "time_sync"}
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert float(props["hil.download_mbit_per_s"]) > 0
    assert float(props["hil.ntp_sync_seconds_after_ssh"]) >= 0
    skipped = [c.get("name") for c in root.iter("testcase") if c.find("skipped") is not None]
    assert skipped == ["test_joins_the_rigs_wifi_access_point"]  # QEMU rigs have no wifi


def test_an_image_without_a_dhcp_client_fails_networking_naming_the_missing_lease(tmp_path: Path) -> None:
    image = build_reference("1.0.0", "no-dhcp", log=lambda _: None).disk
    output, status, _ = _run_suites(tmp_path, image, "suites/networking", "-x", timeout=300)
    assert status == 1, output[-3000:]
    bound = get_profile("reference").bounds.dhcp_lease
    assert f"no DHCP lease: eth0 has no IPv4 address {bound:.0f} s after boot" in output
    assert "DHCP client processes: none" in output


def test_an_image_without_chrony_fails_time_sync_naming_the_missing_sync(tmp_path: Path) -> None:
    image = build_reference("1.0.0", "no-chrony", log=lambda _: None).disk
    output, status, _ = _run_suites(tmp_path, image, "suites/time_sync", "-x", timeout=300)
    assert status == 1, output[-3000:]
    bound = get_profile("reference").bounds.ntp_sync
    assert f"no NTP sync: chrony on the DUT selected no source within {bound:.0f} s" in output
