"""End to end on a real QEMU board: the boot suite passes on the reference image, and every fault ends
in a one-line diagnosis, saved logs, and no QEMU process or temporary disk left behind."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.images.partitions import partitions
from tests.support.e2e import (
    ROOT,
    leftover_disks,
    pytest_env,
    qemu_pids,
    reference_disk,
    run_pytest,
    write_rig,
)

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.fixture(scope="module")
def disk() -> Path:
    return reference_disk()


def test_boot_suite_passes_on_the_reference_image_with_junit_and_allure(tmp_path: Path, disk: Path) -> None:
    junit, allure = tmp_path / "junit.xml", tmp_path / "allure"
    art = ("--hil-artifacts", str(tmp_path / "art"), f"--junitxml={junit}", f"--alluredir={allure}")
    out = run_pytest(tmp_path, "suites/boot", "--rig", "qemu-x86_64", "--image", str(disk), *art)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    root = ET.parse(junit).getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["hil.rig"] == "qemu-x86_64"
    assert props["hil.device_type"] == "qemux86-64"
    assert props["hil.os_version"] == "1.0.0"
    assert props["hil.suite"] == "boot"
    assert float(props["hil.boot_seconds"]) > 0
    assert len(list(root.iter("testcase"))) >= 9
    results = [json.loads(p.read_text()) for p in allure.glob("*-result.json")]
    assert len(results) >= 9
    ran = [r for r in results if r["status"] != "skipped"]  # a skipped test never reached the console
    slices = [a for r in ran for a in r.get("attachments", []) if a["name"].startswith("console (")]
    assert len(ran) >= 9 and len(slices) == len(ran)  # every test that ran carries its console slice
    assert "login:" in (tmp_path / "art" / "qemu-x86_64" / "console.log").read_text(errors="replace")
    assert qemu_pids(tmp_path) == []


def _unbootable_copy(disk: Path, dest: Path) -> Path:
    """The reference image with both root partitions zeroed: firmware and kernel run, no root is found."""
    shutil.copyfile(disk, dest)
    with dest.open("r+b") as f:
        parts = partitions(f.read(1 << 20))
        for part in parts[1:3]:
            f.seek(part.offset)
            f.write(bytes(1 << 20))  # the superblock is in the first MiB
    return dest


def test_an_image_that_never_boots_fails_with_boot_timeout_and_leaves_nothing(
    tmp_path: Path, disk: Path
) -> None:
    image = _unbootable_copy(disk, tmp_path / "zeroed-roots.img")
    rig = write_rig(tmp_path, "short-boot", boot_timeout=45)
    art = tmp_path / "art"
    out = run_pytest(
        tmp_path, "suites/boot", "--rig", str(rig), "--image", str(image), "--hil-artifacts", str(art)
    )
    assert out.returncode == 1
    assert "BootTimeout: no login within 45 s after power-on on short-boot" in out.stdout
    # Every later test fails fast with the first reason instead of waiting out its own timeout.
    assert "DutBroken" in out.stdout
    assert (art / "short-boot" / "console.log").stat().st_size > 0
    assert (art / "short-boot" / "qemu.stderr.log").exists()
    assert qemu_pids(tmp_path) == []
    assert leftover_disks(tmp_path) == []


KILLED = """
import os, signal, subprocess

def test_qemu_dies_under_a_running_test(dut):
    boards = os.environ["HIL_WORKDIR_ROOT"]
    pid = int(subprocess.check_output(["pgrep", "-f", "qemu-system.*" + boards]).split()[0])
    os.kill(pid, signal.SIGKILL)
    dut.run("sleep 5")

def test_the_next_test_fails_fast(dut):
    pass
"""


def test_qemu_killed_from_outside_is_named_and_later_tests_fail_fast(tmp_path: Path, disk: Path) -> None:
    (tmp_path / "test_killed.py").write_text(KILLED)
    art = tmp_path / "art"
    out = run_pytest(tmp_path, str(tmp_path / "test_killed.py"), "--rig", "qemu-x86_64", "--image", str(disk),
                     "--hil-artifacts", str(art), "--rootdir", str(tmp_path))  # fmt: skip
    assert out.returncode == 1, out.stdout[-3000:]
    assert "QemuError: QEMU exited unexpectedly (killed by signal 9)" in out.stdout
    assert "DutBroken: DUT on qemu-x86_64 is broken since an earlier failure: QemuError" in out.stdout
    assert (art / "qemu-x86_64" / "console.log").stat().st_size > 0
    assert qemu_pids(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_mid_boot_stops_qemu_and_removes_its_disks(
    tmp_path: Path, disk: Path, sig: signal.Signals
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suites/boot", "--image", str(disk),
         "--hil-artifacts", str(tmp_path / "art")],
        cwd=ROOT, env=pytest_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not qemu_pids(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert qemu_pids(tmp_path), "QEMU never started"
    time.sleep(2)  # mid-boot: firmware or kernel running
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert qemu_pids(tmp_path) == [], output[-3000:]
    assert leftover_disks(tmp_path) == []


def test_missing_qemu_is_a_usage_error(tmp_path: Path, disk: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**pytest_env(tmp_path), "PATH": str(bin_dir)}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suites/boot", "--image", str(disk)]
    out = subprocess.run(
        [*command, "--rig", "qemu-x86_64"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 4  # pytest's usage-error exit
    assert "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)" in out.stderr
