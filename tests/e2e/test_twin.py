"""The physical-rig code path end to end, on the digital twin: the boot suite through gpiozero power,
the mux, the guarded flasher and pyserial; and the technician's `hil rig` commands on the same rig."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.util.paths import cache_dir
from tests.support.e2e import ROOT, pytest_env, qemu_pids, reference_disk, run_pytest

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.fixture
def twin_rigs(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A rigs directory holding one twin rig of the test's own (its own lease and card)."""
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    name = f"twin-{uuid.uuid4().hex[:8]}"
    shutil.copyfile(ROOT / "rigs" / "twin-x86_64.yaml", rigs / f"{name}.yaml")
    yield rigs, name
    shutil.rmtree(cache_dir() / "twin" / name, ignore_errors=True)


def hil(tmp: Path, rigs: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**pytest_env(tmp), "HIL_RIGS_DIR": str(rigs)}
    return subprocess.run([sys.executable, "-m", "hil", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)  # fmt: skip


def test_boot_suite_passes_on_the_twin_through_the_physical_rig_drivers(
    tmp_path: Path, twin_rigs: tuple[Path, str]
) -> None:
    rigs, name = twin_rigs
    junit = tmp_path / "junit.xml"
    out = run_pytest(tmp_path, "suites/boot", "--rig", str(rigs / f"{name}.yaml"), f"--junitxml={junit}",
                     "--hil-artifacts", str(tmp_path / "art"))  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:]
    assert len(list(ET.parse(junit).getroot().iter("testcase"))) >= 9
    # The transcript came through pyserial on the twin's tty, and the card holds the image.
    assert "login:" in (tmp_path / "art" / name / "console.log").read_text(errors="replace")
    with reference_disk().open("rb") as image, (cache_dir() / "twin" / name / "card.img").open("rb") as card:
        assert card.read(1 << 20) == image.read(1 << 20)
    assert qemu_pids(tmp_path) == []


def test_technician_flashes_with_confirmation_and_checks_the_rig(
    tmp_path: Path, twin_rigs: tuple[Path, str]
) -> None:
    rigs, name = twin_rigs
    image = str(reference_disk())
    refused = hil(tmp_path, rigs, "rig", "flash", name, image)
    assert refused.returncode == 1
    assert "pass --yes to write the card" in refused.stderr
    flashed = hil(tmp_path, rigs, "rig", "flash", name, image, "--yes")
    assert flashed.returncode == 0, flashed.stderr[-2000:]
    assert "card reader usb 0bda:0109 serial HIL-TWIN-0001, 1.00 GiB" in flashed.stdout
    assert f"{name}: flashed {image} and verified" in flashed.stdout
    checked = hil(tmp_path, rigs, "rig", "check", name)
    assert checked.returncode == 0, checked.stdout + checked.stderr[-2000:]
    assert [line.split()[0] for line in checked.stdout.splitlines()[:4]] == ["ok"] * 4
    listed = hil(tmp_path, rigs, "rig", "list")
    assert any(line.startswith(name) and "healthy, checked" in line for line in listed.stdout.splitlines())
    assert qemu_pids(tmp_path) == []
    # Power on outlives the command (the relay is recorded closed), its QEMU does not; the next command to
    # open the twin finds the relay closed and starts the board, then switches it off.
    powered = hil(tmp_path, rigs, "rig", "power", name, "on")
    assert (powered.returncode, powered.stdout) == (0, f"{name}: power on\n"), powered.stderr[-2000:]
    assert qemu_pids(tmp_path) == []
    relay = cache_dir() / "twin" / name / "relay.json"
    assert json.loads(relay.read_text())["state"] == "on"
    off = hil(tmp_path, rigs, "rig", "power", name, "off")
    assert off.returncode == 0, off.stderr[-2000:]
    assert "relay closed: board on" in off.stderr
    assert json.loads(relay.read_text())["state"] == "off"
    assert qemu_pids(tmp_path) == []
