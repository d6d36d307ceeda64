"""End to end: `pytest -n 2 --rig pool:NAME` boots two QEMU boards of one rig definition at once, each
worker on its own instance, and produces one merged JUnit file that the release gate can read."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.results.read import read_results
from tests.support.e2e import ROOT, leftover_disks, pytest_env, qemu_pids, reference_disk

pytestmark = [pytest.mark.qemu, pytest.mark.slow]


def test_two_workers_boot_two_boards_and_merge_one_report(tmp_path: Path) -> None:
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    (rigs / "e2e-twoboards.yaml").write_text(
        "kind: qemu\ndevice_type: qemux86-64\npool: e2e-twoboards\ninstances: 2\n"
    )
    env = {**pytest_env(tmp_path), "HIL_RIGS_DIR": str(rigs)}
    art, junit = tmp_path / "art", tmp_path / "junit.xml"
    base = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "suites/boot"]
    collected = subprocess.run([*base, "--collect-only", "-q"], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=120)  # fmt: skip
    expected = sum(1 for line in collected.stdout.splitlines() if "::" in line)
    out = subprocess.run(
        [*base, "-n", "2", "--rig", "pool:e2e-twoboards", "--image", str(reference_disk()),
         "--hil-artifacts", str(art), f"--junitxml={junit}", f"--alluredir={tmp_path / 'allure'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    root = ET.parse(junit).getroot()
    assert len(list(root.iter("testcase"))) == expected >= 9
    props = [(p.get("name"), p.get("value")) for s in root.iter("testsuite") for p in s.iter("property")]
    suite_props = dict(props)
    assert (suite_props["hil.rig"], suite_props["hil.device_type"]) == ("e2e-twoboards", "qemux86-64")
    assert suite_props["hil.os_version"] == "1.0.0"
    assert len({value for name, value in props if name == "hil.run_id"}) == 1
    for worker in ("gw0", "gw1"):  # both boards booted, each logging to its own directory
        console = art / f"e2e-twoboards-{worker}" / "console.log"
        assert "login:" in console.read_text(errors="replace")
    results = read_results([tmp_path])
    assert not results.problems
    assert {a.device_type for a in results.attempts} == {"qemux86-64"}
    assert qemu_pids(tmp_path) == []
    assert leftover_disks(tmp_path) == []
