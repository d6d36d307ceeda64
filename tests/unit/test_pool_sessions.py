"""The plugin leases its rig for the session: separate pytest processes on one pool get different rigs, a
full pool fails the session with the holders named, and xdist workers report as one run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HOLD = """
import sys, time
from hil.lab.locking import Lease
for name in sys.argv[1:]:
    Lease(name).acquire()
print("held", flush=True)
time.sleep(600)
"""

# Each session writes the rig it holds, then waits until the other session holds one too.
BOTH_HOLD = """
import os, time
from pathlib import Path

def test_hold_a_rig_while_the_other_session_does(rig):
    out = Path(os.environ["POOL_OUT"])
    (out / str(os.getpid())).write_text(rig.name)
    deadline = time.monotonic() + 60
    while len(list(out.iterdir())) < 2:
        assert time.monotonic() < deadline, "the other session never got a rig"
        time.sleep(0.1)
"""

USES_RIG = """
def test_uses_the_rig(rig):
    pass
"""

RECORDS = """
import os
import pytest
from hil.pytestplugin.session import RUN

@pytest.mark.parametrize("n", range(4))
def test_records_the_run(hil_suite_property, pytestconfig, n):
    hil_suite_property("hil.device_type", "qemux86-64")
    hil_suite_property("hil.run_id", pytestconfig.stash[RUN].run_id)
    hil_suite_property("worker", os.environ["PYTEST_XDIST_WORKER"])
"""


@pytest.fixture
def lab(tmp_path: Path) -> dict[str, str]:
    """A pool `bench` of two rigs, with private leases; the environment for inner pytest runs."""
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    for name in ("bench-1", "bench-2"):
        (rigs / f"{name}.yaml").write_text("kind: qemu\ndevice_type: qemux86-64\npool: bench\ninstances: 1\n")
    return {**os.environ, "HIL_RIGS_DIR": str(rigs), "HIL_CACHE_DIR": str(tmp_path / "cache")}


def _pytest(tmp_path: Path, env: dict[str, str], test: str, *args: str) -> subprocess.Popen[str]:
    path = tmp_path / "test_inner.py"
    path.write_text(test)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(path), *args]
    return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def test_two_sessions_on_one_pool_get_different_rigs(tmp_path: Path, lab: dict[str, str]) -> None:
    out = tmp_path / "held"
    out.mkdir()
    env = {**lab, "POOL_OUT": str(out)}
    sessions = [_pytest(tmp_path, env, BOTH_HOLD, "--rig", "pool:bench") for _ in range(2)]
    for session in sessions:
        stdout, _ = session.communicate(timeout=120)
        assert session.returncode == 0, stdout
    assert sorted(p.read_text() for p in out.iterdir()) == ["bench-1", "bench-2"]


def test_a_session_on_a_full_pool_waits_then_fails_naming_the_holders(
    tmp_path: Path, lab: dict[str, str]
) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLD, "bench-1", "bench-2"], env=lab,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        session = _pytest(tmp_path, lab, USES_RIG, "--rig", "pool:bench", "--pool-wait", "1")
        stdout, _ = session.communicate(timeout=120)
    finally:
        child.kill()
        child.wait(timeout=10)
    assert session.returncode == 1
    holder = f"{socket.gethostname()}:{child.pid} since"
    assert f"pool:bench: no free rig after waiting 1 s: bench-1 is leased by {holder}" in stdout
    assert f"bench-2 is leased by {holder}" in stdout


def test_an_unknown_pool_is_a_usage_error(tmp_path: Path, lab: dict[str, str]) -> None:
    session = _pytest(tmp_path, lab, USES_RIG, "--rig", "pool:bnech")
    stdout, _ = session.communicate(timeout=120)
    assert session.returncode == pytest.ExitCode.USAGE_ERROR
    assert "unknown pool 'bnech'; known pools: " in stdout and "bench" in stdout
    assert "--rig NAME|rigs/NAME.yaml|pool:NAME" in stdout


def test_xdist_workers_report_one_run_with_its_suite_properties(tmp_path: Path, lab: dict[str, str]) -> None:
    junit = tmp_path / "junit.xml"
    session = _pytest(tmp_path, lab, RECORDS, "-n", "2", f"--junitxml={junit}")
    stdout, _ = session.communicate(timeout=120)
    assert session.returncode == 0, stdout
    root = ET.parse(junit).getroot()
    props = [(p.get("name"), p.get("value")) for s in root.iter("testsuite") for p in s.iter("property")]
    assert ("hil.device_type", "qemux86-64") in props
    run_ids = {value for name, value in props if name == "hil.run_id"}
    assert {value for name, value in props if name == "worker"} == {"gw0", "gw1"}
    assert len(run_ids) == 1  # both workers ran under the controller's run id
    assert len(list(root.iter("testcase"))) == 4
