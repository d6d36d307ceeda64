"""`hil faults run` end to end: real faults injected into copies of the reference and the plain Debian
images (and into the reference image's update bundle, rebuilt), each caught by the test its catalogue
names with the failure it names; a user's own faults beside the profile judged as missed or not injected;
a recorded healthy run standing as the control next time."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hil.faults.record import FaultStore
from hil.images.builders.debian import build_debian
from hil.lab.bundles import bundle_beside
from tests.support.e2e import ROOT, leftover_disks, pytest_env, qemu_pids, reference_disk

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

USER_FAULTS = """\
motd-only:
  description: a harmless change that no test should notice
  edits:
    - write: {path: /etc/motd, content: "hello\\n"}
  caught_by: {suite: boot, test: "test_boot::test_boots_to_ssh", message: "never said"}
not-there:
  description: a line this image does not have
  edits:
    - replace: {path: /etc/init.d/rcS, old: "start-my-app\\n", new: ""}
  caught_by: {suite: boot, test: "test_boot::test_boots_to_ssh", message: "x"}
"""


def _faults(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hil", "faults", "run", "--only-named", "--boards", "1",
         "--store", str(tmp / "store.sqlite"), *args],
        cwd=ROOT, env={**pytest_env(tmp), **(env or {})}, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip


def _cells(art: Path) -> dict[str, dict]:
    return {c["fault"]: c for c in json.loads((art / "faults.json").read_text())["cells"]}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _nothing_left(tmp: Path, art: Path) -> None:
    assert qemu_pids(tmp) == [], "a QEMU process outlived the run"
    assert leftover_disks(tmp) == [], "a board directory outlived the run"
    assert list(art.glob("fault-*/image")) == [], "a fault's copy of the image outlived the run"


@pytest.mark.timeout(1800)
def test_reference_faults_are_caught_and_a_users_own_faults_are_judged(tmp_path: Path) -> None:
    image = reference_disk()
    bundle = bundle_beside(image)
    assert bundle is not None
    before, bundle_before = _sha(image), _sha(bundle)
    (tmp_path / "os" / "faults").mkdir(parents=True)
    (tmp_path / "os" / "faults" / "reference.yaml").write_text(USER_FAULTS)
    art = tmp_path / "art"
    names = ["time-service-missing", "data-not-mounted", "hostname-ignored", "update-wipes-data", "motd-only",
             "not-there"]  # fmt: skip
    out = _faults(tmp_path, "--artifacts", str(art), *(f"--fault={n}" for n in names),
                  env={"HIL_OS_DIR": str(tmp_path / "os")})  # fmt: skip
    _nothing_left(tmp_path, art)
    assert out.returncode == 1, out.stdout[-4000:] + out.stderr[-4000:]  # not every fault was caught
    cells = _cells(art)
    assert cells["time-service-missing"]["line"].startswith(
        "AssertionError: the time service 'chronyd' is not"
    )
    assert cells["data-not-mounted"]["line"] == "AssertionError: /mnt/data is not mounted"
    assert "the hostname is 'hil-dut', not" in cells["hostname-ignored"]["line"]
    assert {n: c["outcome"] for n, c in cells.items()} == {
        "time-service-missing": "caught", "data-not-mounted": "caught", "hostname-ignored": "caught",
        "update-wipes-data": "caught", "motd-only": "missed", "not-there": "not injected",
    }  # fmt: skip
    assert cells["motd-only"]["line"] == "passed"
    assert "motd-only: MISSED (boot test_boot::test_boots_to_ssh): passed" in out.stdout
    assert "the data partition lost /mnt/data/hil-update-canary" in cells["update-wipes-data"]["line"]
    assert "score: boot 3/5, hostapp_update 1/1" in out.stdout and (art / "summary.html").is_file()
    assert _sha(image) == before, "a fault reached the image under test itself"
    assert _sha(bundle) == bundle_before, "a fault reached the update bundle beside the image"
    assert FaultStore(tmp_path / "store.sqlite").latest()[0].caught == 4
    # The control was run and recorded: a second run of the same image needs none.
    again = _faults(tmp_path, "--artifacts", str(tmp_path / "again"), "--fault=time-service-missing")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "control: recorded run" in again.stderr and not (tmp_path / "again" / "control").exists()
    _nothing_left(tmp_path, tmp_path / "again")


@pytest.mark.timeout(1800)
def test_debian_faults_are_caught_by_the_generic_suites(tmp_path: Path) -> None:
    image = build_debian().disk
    art = tmp_path / "art"
    out = _faults(tmp_path, "--rig", "qemu-x86_64-generic", "--image", str(image), "--device-type",
                  "qemux86-64", "--artifacts", str(art), "--fault=time-service-masked", "--fault=unit-fails",
                  env={"HIL_DUT_PASSWORD": "hil-debian"})  # fmt: skip
    _nothing_left(tmp_path, art)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    cells = _cells(art)
    assert cells["time-service-masked"]["line"].startswith(
        "AssertionError: the time service 'chronyd' is not"
    )
    assert "hil-fault-broken.service" in cells["unit-fails"]["line"] + out.stdout
    assert "2 of 2 applicable faults caught" in out.stdout
