"""jenkins/Jenkinsfile's steps as Jenkins would run them, against real rigs and a real release store.

tests/support/jenkins_harness.py plays Jenkins: fresh agent workspaces, the lock handing out RIG, the
device type and the build's parameters in the environment, `checkout scm` bringing the lab's gate policy,
stash and unstash between the rig's agent and the gate's. hil is the venv's, unstubbed. The QEMU rig proves a
FINAL release; the twin (the physical-rig drivers on a QEMU board) proves the physical path as far as it can;
a cell that fails proves the gate still runs and refuses. By default the suites are the boot suite only
(HIL_JENKINS_SUITES widens them), which keeps a run within a few minutes under TCG.

First, the harness itself: that it gives aborts, timeouts and caught errors the results Jenkins gives.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hil.util.paths import cache_dir
from tests.support.e2e import boards_root, qemu_pids, reference_disk
from tests.support.jenkins_harness import Agent, Build, Jenkins, Resource

ROOT = Path(__file__).resolve().parents[2]
JENKINSFILE = ROOT / "jenkins" / "Jenkinsfile"
RIG_HEALTH = ROOT / "jenkins" / "rig-health.Jenkinsfile"
SUITES = os.environ.get("HIL_JENKINS_SUITES", "boot")
# The image the builds test, version 1.0.0; by default hil's reference image, which the pipeline's default
# IMAGES line (no path) also picks.
IMAGE = os.environ.get("HIL_JENKINS_IMAGE")
VENV_BIN = Path(sys.executable).parent


# ---- the harness keeps Jenkins' semantics


# The first stage's steps, for a two-stage pipeline whose second stage only echoes.
HANG = "timeout(time: 1, unit: 'SECONDS') { sh 'sleep 60' }"
TIMEOUTS = {
    "caught": f"catchError {{ {HANG} }}",
    "not caught": f"catchError(catchInterruptions: false) {{ {HANG} }}",
    "own bound": "catchError(stageResult: 'FAILURE', catchInterruptions: false) { sh 'timeout 1 sleep 60' }",
}


@pytest.fixture(scope="module")
def timeouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Build]:
    """Each of TIMEOUTS run as a build (in one JVM)."""
    root = tmp_path_factory.mktemp("timeouts")
    pipelines = []
    for name, steps in TIMEOUTS.items():
        path = root / f"{name.replace(' ', '-')}.Jenkinsfile"
        path.write_text(f"""pipeline {{
    agent any
    stages {{
        stage('first') {{ steps {{ {steps} }} }}
        stage('second') {{ steps {{ echo 'second ran' }} }}
    }}
}}
""")
        pipelines.append((path, {}))
    builds = Jenkins(root / "home", agents=[Agent("agent")], resources=[]).run_many(pipelines)
    return dict(zip(TIMEOUTS, builds, strict=True))


def _outcome(build: Build) -> tuple[str, str, str]:
    return build.result, build.stage("first"), build.stage("second")


def test_a_timeout_caught_by_catch_error_goes_on_and_ends_the_build_aborted(
    timeouts: dict[str, Build],
) -> None:
    assert _outcome(timeouts["caught"]) == ("ABORTED", "ABORTED", "SUCCESS")


def test_a_timeout_not_caught_aborts_the_stage_and_skips_the_rest(timeouts: dict[str, Build]) -> None:
    assert _outcome(timeouts["not caught"]) == ("ABORTED", "ABORTED", "SKIPPED")


def test_a_command_that_times_itself_out_is_an_ordinary_failure(timeouts: dict[str, Build]) -> None:
    assert _outcome(timeouts["own bound"]) == ("FAILURE", "FAILURE", "SUCCESS")


# ---- the pipeline against real rigs


@dataclass
class Lab:
    """Rig agents for a QEMU rig and a twin of this test's own, a gate agent with a sqlite release store,
    and the lab's project (its gate policy) for `checkout scm`."""

    root: Path
    qemu: str
    twin: str
    env: dict[str, str]

    def hil(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real hil CLI, in the lab's environment."""
        env = {**os.environ, **self.env}
        return subprocess.run([str(VENV_BIN / "hil"), *args], env=env, capture_output=True, text=True,
                              timeout=600, stdin=subprocess.DEVNULL)  # fmt: skip

    def draft(self, image: Path) -> str:
        """A draft release of `image`, as a technician creates one before the build."""
        out = self.hil(
            "release", "create", "--version", "1.0.0", "--device-type", "qemux86-64", "--image", str(image)
        )
        assert out.returncode == 0, out.stderr
        return re.match(r"release (\S+):", out.stdout).group(1)

    def status(self, release: str) -> str:
        out = self.hil("release", "show", release)
        assert out.returncode == 0, out.stderr
        return re.search(r"status (\S+)", out.stdout).group(1)

    def jenkins(self, *resources: Resource) -> Jenkins:
        agents = [
            Agent("rigs-qemu", (self.qemu,), self.env),
            Agent("rigs-twin", (self.twin,), self.env),
            Agent("gate", ("hil-gate",), self.env),
        ]
        return Jenkins(self.root / "jenkins", agents=agents, resources=list(resources),
                       scm=self.root / "project", path=[VENV_BIN])  # fmt: skip


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    tag = uuid.uuid4().hex[:8]
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    qemu, twin = f"jenkins-qemu-{tag}", f"jenkins-twin-{tag}"
    shutil.copyfile(ROOT / "rigs" / "qemu-x86_64.yaml", rigs / f"{qemu}.yaml")
    twin_rig = yaml.safe_load((ROOT / "rigs" / "twin-x86_64.yaml").read_text())
    twin_rig["card"]["serial"] = f"HIL-JENKINS-{tag}"  # a card of its own: hil leases cards by identity
    (rigs / f"{twin}.yaml").write_text(yaml.safe_dump(twin_rig))
    # The lab's project, as `checkout scm` brings it: hil's policy, for the suites this build runs.
    policy = yaml.safe_load((ROOT / "gate.yaml").read_text())
    required = policy["device_types"]["qemux86-64"]["suites"]
    policy["device_types"] = {"qemux86-64": {"suites": {s: required[s] for s in SUITES.split()}}}
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "gate.yaml").write_text(yaml.safe_dump(policy))
    env = {
        "HIL_RIGS_DIR": str(rigs),
        "HIL_RELEASE_STORE": str(tmp_path / "releases.sqlite"),
        "HIL_WORKDIR_ROOT": str(boards_root(tmp_path)),
        "PYTHONUNBUFFERED": "1",
    }
    yield Lab(tmp_path, qemu, twin, env)
    shutil.rmtree(cache_dir() / "twin" / twin, ignore_errors=True)
    assert qemu_pids(tmp_path) == []


def _image() -> Path:
    return Path(IMAGE) if IMAGE else reference_disk()


def _params(release: str, image: Path | None = None) -> dict[str, object]:
    """A build of the draft `release` on qemux86-64: `image` named in IMAGES, else the default line."""
    images = f"qemux86-64={image}" if image else f"qemux86-64={IMAGE or ''}\ngeneric-aarch64="
    return {"RELEASE": release, "DEVICE_TYPES": "qemux86-64", "SUITES": SUITES, "IMAGES": images}


def _assert_wired_as_designed(build: Build, rig: str, agent_label: str) -> None:
    """The rig locked before its agent is taken, the stash holding only what the gate reads, the gate fed."""
    kinds = [
        (e["event"], e.get("label") or e.get("variable"))
        for e in build.events
        if e["event"] in ("lock", "node")
    ]
    assert kinds[:2] == [("lock", "RIG"), ("node", agent_label)]
    assert build.of("lock")[0]["resources"] == [rig]
    stashed = build.stash("results-qemux86-64")
    assert "results/qemux86-64/junit.xml" in stashed
    assert all(f.endswith("junit.xml") or "/allure-results/" in f for f in stashed)
    assert [e["paths"] for e in build.of("allure")] == [["results/qemux86-64/allure-results"]]


@pytest.mark.qemu
@pytest.mark.slow
def test_a_build_on_the_qemu_rig_makes_the_draft_final(lab: Lab) -> None:
    release = lab.draft(_image())
    jenkins = lab.jenkins(Resource(f"{lab.qemu}#0", ("hil-qemux86-64", f"{lab.qemu}#0")))
    build = jenkins.run(JENKINSFILE, _params(release))
    assert build.result == "SUCCESS", build.console[-6000:]
    _assert_wired_as_designed(build, f"{lab.qemu}#0", lab.qemu)
    assert build.stage("suites", "Matrix - DEVICE_TYPE = 'generic-aarch64'", "on a rig") == "SKIPPED"
    assert [e["status"] for e in build.commands("hil release gate")] == [0]
    assert lab.status(release) == "final"
    junit = ET.parse(build.archive / "results" / "qemux86-64" / "junit.xml").getroot()
    assert {s.get("name") for s in junit.iter("testsuite")} == {"hil-qemux86-64"}


@pytest.mark.qemu
@pytest.mark.slow
def test_a_build_on_the_twin_takes_the_physical_path_and_makes_the_draft_final(lab: Lab) -> None:
    image = _image()
    release = lab.draft(image)
    jenkins = lab.jenkins(Resource(lab.twin, ("hil-qemux86-64", lab.twin)))
    build = jenkins.run(JENKINSFILE, _params(release, image))
    assert build.result == "SUCCESS", build.console[-6000:]
    _assert_wired_as_designed(build, lab.twin, lab.twin)
    assert f"--image {image}" in build.console  # a physical rig flashes the image IMAGES names
    assert lab.status(release) == "final"
    # The console came through pyserial on the twin's pty, and the card holds the image.
    assert "login:" in (build.archive / "results" / "qemux86-64" / lab.twin / "console.log").read_text(
        errors="replace"
    )
    with image.open("rb") as flashed, (cache_dir() / "twin" / lab.twin / "card.img").open("rb") as card:
        assert card.read(1 << 20) == flashed.read(1 << 20)


@pytest.mark.qemu
@pytest.mark.slow
def test_a_failed_cell_is_still_gated_and_the_release_refused(lab: Lab) -> None:
    # A board that does not reach its login within its rig's bound: the boot suite fails on it.
    rig = Path(lab.env["HIL_RIGS_DIR"]) / f"{lab.qemu}.yaml"
    spec = yaml.safe_load(rig.read_text())
    spec["timeouts"]["boot"] = 2
    rig.write_text(yaml.safe_dump(spec))
    release = lab.draft(_image())
    jenkins = lab.jenkins(Resource(f"{lab.qemu}#0", ("hil-qemux86-64", f"{lab.qemu}#0")))
    build = jenkins.run(JENKINSFILE, _params(release))
    assert build.result == "FAILURE"
    assert build.stage("suites", "Matrix - DEVICE_TYPE = 'qemux86-64'", "on a rig") == "FAILURE"
    assert [e["status"] for e in build.commands("hil run")] == [1]
    assert "results/qemux86-64/junit.xml" in build.stash("results-qemux86-64")
    assert [e["status"] for e in build.commands("hil release gate")] == [1]
    assert build.stage("gate") == "FAILURE"
    assert lab.status(release) == "draft"
    summary = (build.archive / "gate" / "summary.md").read_text()
    assert "refused" in summary.lower() and "boot" in summary


@pytest.mark.qemu
@pytest.mark.slow
def test_the_health_job_checks_the_twin_through_its_own_lock(lab: Lab) -> None:
    jenkins = lab.jenkins(Resource(lab.twin, ("hil-qemux86-64", lab.twin)))
    build = jenkins.run(RIG_HEALTH, {"AGENT": "rigs-twin", "RIGS": lab.twin, "KNOWN_GOOD": ""})
    assert build.result == "SUCCESS", build.console[-6000:]
    assert [e["event"] for e in build.events if e["event"] in ("lock", "node")] == ["lock", "node"]
    assert [e["status"] for e in build.commands("hil rig check")] == [0]
    listed = lab.hil("rig", "list")
    assert any(line.startswith(lab.twin) and "healthy" in line for line in listed.stdout.splitlines())
