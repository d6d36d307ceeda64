"""End to end with a real A/B updater hil did not write: Debian 12 with RAUC (hil image build-rauc) on
a QEMU board, driven by the same hostapp-update suite as hil's reference image, through the OS
profile's update contract alone. Every bundle role the suite needs comes from the bundles file the
builder writes beside the image; no test is skipped, and no QEMU or temporary disk outlives the run."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.images.builders.rauc import build_rauc
from tests.support.e2e import HOSTAPP_UPDATE_TESTS, ROOT, leftover_disks, pytest_env, qemu_pids

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


@pytest.mark.timeout(2700)
def test_hostapp_update_suite_passes_on_the_rauc_image(tmp_path: Path) -> None:
    image = build_rauc()
    art = tmp_path / "art"
    env = {**pytest_env(tmp_path), "HIL_DUT_PASSWORD": "hil-debian"}
    out = subprocess.run(
        [sys.executable, "-m", "hil", "run", "--rig", "qemu-rauc", "--image", str(image.disk),
         "--suite", "hostapp_update", "--artifacts", str(art), "--no-gate"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=2600,
    )  # fmt: skip
    assert qemu_pids(tmp_path) == [], "a QEMU process outlived the run"
    assert leftover_disks(tmp_path) == [], "a board directory outlived the run"
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    [junit] = art.glob("**/junit*.xml")
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == HOSTAPP_UPDATE_TESTS
    assert not [name for name, case in cases.items() if case.find("skipped") is not None]
    props = {p.get("name"): p.get("value") for p in ET.parse(junit).getroot().iter("property")}
    assert props["hil.os_profile"] == "rauc"
    assert props["hil.os_version"] == image.version  # the image under test is the base: its release
    assert os.path.samefile(props["hil.update_bundle"], image.bundles["good"])
