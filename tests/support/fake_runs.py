"""Real recorded runs without booting anything: pytest sessions of a tiny suite under hil's own plugin, on
the fake board (tests/support/fakes/board.py), each recorded in a store with --hil-store.

The suite is laid out as hil's are (`suites/smoke/`), so its tests carry hil.suite and the gate judges
them; one test fails when asked, so two runs of one image make it flaky.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.disk_images import make_disk

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import pytest

from hil.dut.boards import BOARD_KINDS, BoardKind
from tests.support.fakes.board import FakeBoard

def _fake(rig, profile, artifacts):
    return FakeBoard(artifacts / "b", password="pw")

BOARD_KINDS["qemu"] = BoardKind(lambda rig: None, lambda: FakeBoard, _fake)


@pytest.fixture(autouse=True)
def _the_fake_os_says_its_version(hil_suite_property):
    # The fake board has no SSH, where hil reads the OS version; this OS states it.
    hil_suite_property("hil.os_version", "1.0")
"""

SUITE = """
import os

import pytest


def test_the_console_answers(console_dut, record_property):
    record_property("hil.boot_seconds", "1.25")
    assert console_dut.console_run("echo console-ok").output.strip() == "console-ok"


def test_time_sync_is_flaky_here(console_dut):
    console_dut.console_run("echo checking the clock")
    if os.environ.get("SMOKE_FAIL") == "1":
        pytest.fail("chrony did not sync within the bound")


@pytest.mark.requires("wifi")
def test_joins_the_wifi(rig):
    pass
"""

POLICY = """
device_types:
  qemux86-64:
    suites:
      smoke:
        min_tests: 2
        allow_skips: [test_joins_the_wifi]
"""

RIG = (
    "kind: qemu\ndevice_type: qemux86-64\nos: generic\ncredentials:\n  password_env: BENCH_PW\n"
    "timeouts:\n  boot: 20\n  ssh: 1\n  command: 10\n  shutdown: 1\n"
)


@dataclass(frozen=True)
class Lab:
    """A project folder with the smoke suite, a rig, an image, a gate policy and a store."""

    root: Path
    store: Path
    image: Path
    rig: Path
    policy: Path

    @property
    def suites(self) -> Path:
        """The suites folder (HIL_SUITES_DIR for the gate's catalog)."""
        return self.root / "suites"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a session or a hil command runs in here."""
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HIL_CACHE_DIR": str(self.root / "cache"),
            "HIL_SUITES_DIR": str(self.suites),
            "HIL_RELEASE_STORE": str(self.store),
            "BENCH_PW": "pw",
            **extra,
        }

    def run(self, *, fail: bool = False, timeout: float = 240) -> Path:
        """One recorded pytest session; its artifacts directory (the JUnit file is in it)."""
        artifacts = Path(tempfile.mkdtemp(prefix="hil-run-", dir=self.root / "runs"))
        command = [
            sys.executable, "-m", "pytest", str(self.suites / "smoke"), "-p", "no:cacheprovider", "-q",
            "--rig", str(self.rig), "--image", str(self.image), "--device-type", "qemux86-64",
            "--hil-artifacts", str(artifacts), f"--junitxml={artifacts / 'junit.xml'}",
            "-o", "junit_family=xunit1", f"--alluredir={artifacts / 'allure-results'}",
            "--hil-store", str(self.store),
        ]  # fmt: skip
        done = subprocess.run(
            command,
            cwd=self.root,
            env=self.env(SMOKE_FAIL="1" if fail else "0"),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if "recorded in" not in done.stdout:
            raise AssertionError(f"the run was not recorded:\n{done.stdout}\n{done.stderr}")
        return artifacts

    def hil(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """A hil command in this lab."""
        return subprocess.run(
            [sys.executable, "-m", "hil", *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def make_lab(root: Path) -> Lab:
    """Lay out the lab under `root` (kept short: the fake console is a Unix socket under it)."""
    smoke = root / "suites" / "smoke"
    smoke.mkdir(parents=True)
    (root / "runs").mkdir()
    (root / "conftest.py").write_text(CONFTEST)
    (smoke / "test_smoke.py").write_text(SUITE)
    rig = root / "bench.yaml"
    rig.write_text(RIG)
    policy = root / "gate.yaml"
    policy.write_text(POLICY)
    image = make_disk(root / "os-1.0.img", boot_files={"EFI.txt": b"no device type here"})
    return Lab(root=root, store=root / "store.sqlite", image=image, rig=rig, policy=policy)


@dataclass(frozen=True)
class GatedLab:
    """A lab with two recorded runs of one image (the flaky test passed, then failed) and a release gated
    on the first run (final) and then on both (refused: the latest run failed)."""

    lab: Lab
    passing: str
    failing: str
    release: str
    reports: tuple[Path, Path]


def gated_lab(root: Path) -> GatedLab:
    """Record the two runs and gate the release from the store, as a lab would."""
    import sqlite3

    lab = make_lab(root)
    lab.run()
    lab.run(fail=True)
    with sqlite3.connect(lab.store) as db:
        passing, failing = (row[0] for row in db.execute("SELECT run_id FROM runs ORDER BY id"))
    created = lab.hil("release", "create", "--version", "1.0", "--device-type", "qemux86-64", "--image",
                      str(lab.image))  # fmt: skip
    release = created.stdout.split(":")[0].removeprefix("release ")
    reports = (root / "gate-1", root / "gate-2")
    for runs, report in (((passing,), reports[0]), ((passing, failing), reports[1])):
        args = [arg for run in runs for arg in ("--run", run)]
        lab.hil("release", "gate", release, *args, "--policy", str(lab.policy), "--report-dir", str(report))
    return GatedLab(lab, passing, failing, release, reports)
