"""jenkins/Jenkinsfile's steps as Jenkins would run them: in made-up busy labs, and against real rigs and a
real release store.

tests/support/jenkins_harness.py plays Jenkins: fresh agent workspaces, the lock handing out RIG, the
device type and the build's parameters in the environment, `checkout scm` bringing the lab's gate policy,
stash and unstash between the rig's agent and the gate's. First, the harness itself: that it gives aborts,
timeouts and caught errors the results Jenkins gives. Then the busy lab (issue 22): rigs busy for hours,
agents that never come, a bad rig, a failed checkout, stale results, two Allure installations, hostile
parameters, an abort, each against the pipelines as they are and, where the issue found a fault, as they
were before it; a stub `hil` records what would run. Last, the real thing (`-m "qemu and slow"`): hil is the
venv's, unstubbed. The QEMU rig proves a FINAL release; the twin (the physical-rig drivers on a QEMU board)
proves the physical path as far as it can; a cell that fails proves the gate still runs and refuses, and
a cell that gets no rig (no board boots, so not slow) that the gate's report and evidence say why. By
default the suites are the boot suite only (HIL_JENKINS_SUITES widens them), which keeps a run within a few
minutes under TCG.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from hil.util.paths import cache_dir
from tests.support.e2e import boards_root, qemu_pids, reference_disk
from tests.support.jenkins_harness import Agent, Build, Jenkins, Resource, Run, run_together
from tests.support.release_samples import write_image

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


def test_a_timeout_that_left_its_block_is_caught_even_without_catching_interruptions(
    timeouts: dict[str, Build],
) -> None:
    # TimeoutStepExecution.Callback: once its own interruption is past the timeout block, it is not an
    # actual interruption, so catchError(catchInterruptions: false) catches it: ABORTED, and the build goes
    # on.
    assert _outcome(timeouts["not caught"]) == ("ABORTED", "ABORTED", "SUCCESS")


def test_a_command_that_times_itself_out_is_an_ordinary_failure(timeouts: dict[str, Build]) -> None:
    assert _outcome(timeouts["own bound"]) == ("FAILURE", "FAILURE", "SUCCESS")


# ---- a busy lab: waits, bad rigs, missing cells, hostile parameters, aborts (issue 22)
#
# Each case runs jenkins/Jenkinsfile (or rig-health.Jenkinsfile) and, where the issue found a fault, the same
# file as it was before issue 22 (tests/support/fixtures/jenkins_before_22/), in a lab of its own whose `hil`
# records its arguments and writes results without booting anything. All builds run in one JVM; the harness
# skips the time a wait would take, so a rig busy for 200 minutes costs nothing.

BEFORE_22 = ROOT / "tests" / "support" / "fixtures" / "jenkins_before_22"
OLD_MAIN, OLD_HEALTH = BEFORE_22 / "Jenkinsfile", BEFORE_22 / "rig-health.Jenkinsfile"
MAIN = JENKINSFILE
CELL = ("suites", "Matrix - DEVICE_TYPE = 'qemux86-64'", "on a rig")
ARM_CELL = ("suites", "Matrix - DEVICE_TYPE = 'generic-aarch64'", "on a rig")
BASE = {"RELEASE": "7", "DEVICE_TYPES": "qemux86-64", "SUITES": "boot", "IMAGES": "qemux86-64="}
# Quotes, command substitution and spaces: a path as valid as any, and code to a shell that is pasted it.
HOSTILE_IMAGE = "/srv/images/a b/x'$(touch pwned)'y.img"
RPI = (Resource("lab-rpi4-01", ("hil-raspberrypi4-64", "lab-rpi4-01")),)
# A lab's shared store: the URL its Secret text credential holds, the build parameter naming that credential,
# and the rig agent carrying `hil` (an agent with hil installed), where the gate may then run.
STORE_URL = "postgresql://hil@db.lab.invalid/hil"
STORE = {"HIL_STORE_CREDENTIAL": "hil-store-url"}
HIL_AGENT = {"labels": ("qemu-x86_64", "qemu-arm64", "hil")}

# The lab's hil: records each command line (and where it ran), then does what the agent's HIL_STUB_*
# variables say: `run` fails on the rigs named in HIL_STUB_BAD, else sleeps HIL_STUB_RUN_SECONDS and writes
# JUnit and Allure results; `rig check` fails on HIL_STUB_BAD; `rig list` shows HIL_STUB_LIST_UNHEALTHY as
# unhealthy; `release gate` passes.
STUB = """#!{python} -I
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
env = os.environ
with open({record!r}, "a") as out:
    out.write(json.dumps({{"lab": env.get("HIL_STUB_LAB"), "build": env.get("BUILD_NUMBER"), "argv": args,
                          "node": env.get("NODE_NAME"), "cwd": os.getcwd(), "store": env.get("HIL_STORE"),
                          "tag": env.get("BUILD_TAG")}}) + "\\n")
bad = env.get("HIL_STUB_BAD", "").split()
if args[:1] == ["run"]:
    rig = args[args.index("--rig") + 1]
    if rig in bad:
        print(f"hil: rig {{rig}} failed its last check (card half-written)")
        sys.exit(1)
    time.sleep(float(env.get("HIL_STUB_RUN_SECONDS", "0")))
    folder = Path(args[args.index("--artifacts") + 1])
    (folder / "allure-results").mkdir(parents=True, exist_ok=True)
    (folder / "junit.xml").write_text("<testsuites/>")
    (folder / "allure-results" / "1-result.json").write_text("{{}}")
    (folder / "console.log").write_text("login:")
elif args[:2] == ["rig", "list"]:
    print(f"{{'rig':22}} {{'kind':8}} {{'device type':18}} {{'leased by':34}} health")
    for name in env.get("HIL_STUB_LIST_UNHEALTHY", "").split():
        print(f"{{name:22}} {{'qemu':8}} {{'qemux86-64':18}} {{'-':34}} unhealthy (x), checked now")
elif args[:2] == ["rig", "check"]:
    if args[2] in env.get("HIL_STUB_LEASED", "").split():
        print(f"hil: LeaseError: rig {{args[2]}} is leased by pid 4242 on lab-qemu (hil rig hold)")
        sys.exit(1)
    if args[2] in bad:
        print(f"FAIL power    no console output after power on\\n{{args[2]}}: UNHEALTHY: pools skip it")
        sys.exit(1)
    print(f"{{args[2]}}: healthy")
"""


REPAIRED = Resource("qemu-x86_64#0", ("hil-qemux86-64", "qemu-x86_64#0", "hil-unhealthy"))


@dataclass(frozen=True)
class Case:
    """One build in a lab of its own (or a lab shared with earlier cases, by name)."""

    jenkinsfile: Path
    params: dict[str, object]
    lab: str = (
        ""  # cases with the same lab share its Jenkins (resources, workspaces); default: the case's own
    )
    resources: tuple[Resource, ...] = (Resource("qemu-x86_64#0", ("hil-qemux86-64", "qemu-x86_64#0")),)
    rig_agent: dict = field(default_factory=dict)  # Agent fields for the rig agent, lab-qemu
    stub: dict = field(default_factory=dict)  # the rig agent's HIL_STUB_* variables
    jenkins: dict = field(default_factory=dict)  # Jenkins arguments: tools, scm_broken_on
    abort_sh: str | None = None
    prepare: str = ""  # what the lab's workspaces hold before the first build: "stale results"


CASES = {
    # Finding 1: a rig free only after 199 minutes 59 seconds.
    "rig busy 200 min (before)": Case(OLD_MAIN, BASE, resources=(
        Resource("qemu-x86_64#0", ("hil-qemux86-64", "qemu-x86_64#0"), free_after=199.99),
    ), stub={"HIL_STUB_RUN_SECONDS": "5"}),
    "rig busy 200 min": Case(MAIN, BASE, resources=(
        Resource("qemu-x86_64#0", ("hil-qemux86-64", "qemu-x86_64#0"), free_after=199.99),
    ), stub={"HIL_STUB_RUN_SECONDS": "5"}),
    "rig busy 59 min": Case(MAIN, BASE, resources=(
        Resource("qemu-x86_64#0", ("hil-qemux86-64", "qemu-x86_64#0"), free_after=59),
    )),
    # Findings 1 and 4: the rig's agent never comes.
    "agent offline (before)": Case(OLD_MAIN, BASE, rig_agent={"online": False}),
    "agent offline": Case(MAIN, BASE, rig_agent={"online": False}),
    "gate agent offline": Case(MAIN, BASE, jenkins={"gate_online": False}),
    # Finding 4: a label no resource carries, a failed checkout.
    "no arm rig (before)": Case(OLD_MAIN, BASE | {"DEVICE_TYPES": "generic-aarch64 qemux86-64"}),
    "no arm rig": Case(MAIN, BASE | {"DEVICE_TYPES": "generic-aarch64 qemux86-64"}),
    "checkout fails (before)": Case(OLD_MAIN, BASE, jenkins={"scm_broken_on": ("lab-qemu",)}),
    "checkout fails": Case(MAIN, BASE, jenkins={"scm_broken_on": ("lab-qemu",)}),
    # Finding 6: an earlier build's results in the workspace, and the run's shell cannot start.
    "stale results (before)": Case(OLD_MAIN, BASE, prepare="stale results"),
    "stale results": Case(MAIN, BASE, prepare="stale results"),
    # Finding 7: two Allure installations.
    "two allures (before)": Case(OLD_MAIN, BASE, jenkins={"tools": ("allure", "allure-2.29")}),
    "two allures": Case(MAIN, BASE, jenkins={"tools": ("allure", "allure-2.29")}),
    # Findings 3 and 8: hostile parameters.
    "quoted image (before)": Case(OLD_MAIN, BASE | {"BALENA": True, "IMAGES": f"qemux86-64={HOSTILE_IMAGE}"}),
    "quoted image": Case(MAIN, BASE | {"BALENA": True, "IMAGES": f"qemux86-64={HOSTILE_IMAGE}"}),
    "device type ../ (before)": Case(OLD_MAIN, BASE | {"DEVICE_TYPES": "qemux86-64 ../../x"}),
    "suite * (before)": Case(OLD_MAIN, BASE | {"SUITES": "boot *"}),
    # Finding 2: one bad rig of two; the health job takes it out, a check that passes puts one back.
    "bad rig (before)": Case(OLD_MAIN, BASE, lab="two rigs, one bad (before)"),
    "health finds the bad rig": Case(RIG_HEALTH, {"AGENT": "lab-qemu", "RIGS": "qemu-x86_64#0 qemu-x86_64#1"},
                                     lab="two rigs, one bad"),
    "bad rig": Case(MAIN, BASE, lab="two rigs, one bad"),
    "health passes a repaired rig": Case(RIG_HEALTH, {"AGENT": "lab-qemu", "RIGS": "qemu-x86_64#0"},
                                         resources=(REPAIRED,)),
    "a run leaves its rig unhealthy": Case(MAIN, BASE, lab="a rig goes bad", stub={
        "HIL_STUB_BAD": "qemu-x86_64#0", "HIL_STUB_LIST_UNHEALTHY": "qemu-x86_64"}),
    "the next cell takes another rig": Case(MAIN, BASE, lab="a rig goes bad"),
    # Finding 5: the health job on an agent whose only executor a long run holds, or whose rig a build holds.
    "health, agent busy (before)": Case(OLD_HEALTH, {"AGENT": "lab-1", "RIGS": "lab-rpi4-01"}, resources=RPI),
    "health, agent busy": Case(RIG_HEALTH, {"AGENT": "lab-1", "RIGS": "lab-rpi4-01"}, resources=RPI),
    "health, rig busy": Case(RIG_HEALTH, {"AGENT": "lab-qemu", "RIGS": "qemu-x86_64#0"}, resources=(
        Resource("qemu-x86_64#0", ("hil-qemux86-64", "qemu-x86_64#0"), busy=True),
    )),
    "health, hil lease held": Case(RIG_HEALTH, {"AGENT": "lab-qemu", "RIGS": "qemu-x86_64#0"},
                                   stub={"HIL_STUB_LEASED": "qemu-x86_64#0"}),
    # An abort while hil runs.
    "abort": Case(MAIN, BASE, abort_sh="hil run"),
    # A shared store: the runs recorded there with the build's tag, the gate on any hil agent (the hil-gate
    # agent offline), no stash but the Allure results; a missing cell; a credential Jenkins does not have.
    "shared store": Case(MAIN, BASE | STORE, rig_agent=HIL_AGENT, jenkins={"gate_online": False}),
    "shared store, no arm rig": Case(MAIN, BASE | STORE | {"DEVICE_TYPES": "generic-aarch64 qemux86-64"},
                                     rig_agent=HIL_AGENT),
    "shared store, no credential": Case(MAIN, BASE | {"HIL_STORE_CREDENTIAL": "no-such-credential"},
                                        rig_agent=HIL_AGENT),
}  # fmt: skip
TWO_RIGS = (
    Resource("qemu-x86_64#0", ("hil-qemux86-64", "qemu-x86_64#0")),
    Resource("qemu-x86_64#1", ("hil-qemux86-64", "qemu-x86_64#1")),
)
# Labs shared by several cases: their resources and the rig agent's variables.
SHARED = {
    "two rigs, one bad (before)": (TWO_RIGS, {"HIL_STUB_BAD": "qemu-x86_64#0"}),
    "two rigs, one bad": (TWO_RIGS, {"HIL_STUB_BAD": "qemu-x86_64#0"}),
    "a rig goes bad": (TWO_RIGS, {"HIL_STUB_BAD": "qemu-x86_64#0", "HIL_STUB_LIST_UNHEALTHY": "qemu-x86_64"}),
}
# Parameters the 'parameters' stage refuses, before any rig is taken.
REFUSED = {
    "device types ../ and *": {"DEVICE_TYPES": "qemux86-64 ../../x *"},
    "device type $()": {"DEVICE_TYPES": "qemux86-64 $(touch${IFS}pwned)"},
    "a second IMAGES line": {"IMAGES": "qemux86-64=/srv/a.img\n$(touch pwned)"},
    "an image path with ..": {"IMAGES": "qemux86-64=/srv/../etc/x.img"},
    "an image path with *": {"IMAGES": "qemux86-64=/srv/*.img"},
    "a relative image path": {"IMAGES": "qemux86-64=images/x.img"},
    "a suite *": {"SUITES": "boot *"},
    "a release that is an option": {"RELEASE": "--policy=/tmp/lenient.yaml"},
    "a store credential that is not an id": {"HIL_STORE_CREDENTIAL": "x' $(touch pwned)"},
}


@dataclass(frozen=True)
class Outcome:
    build: Build
    commands: list[dict]  # the lab hil's command lines, in order
    root: Path  # the lab's directory

    def argv(self, prefix: str) -> list[list[str]]:
        return [c["argv"] for c in self.commands if " ".join(c["argv"]).startswith(prefix)]

    def missing(self) -> str:
        """The gate's missing.txt, as archived ("" without one)."""
        path = self.build.archive / "gate" / "missing.txt"
        return path.read_text() if path.exists() else ""


def _jenkins(root: Path, record: Path, name: str, case: Case, resources, stub: dict) -> Jenkins:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "hil").write_text(STUB.format(python=sys.executable, record=str(record)))
    (bin_dir / "hil").chmod(0o755)
    (root / "scm").mkdir()
    (root / "scm" / "gate.yaml").write_text("# the lab's policy\n")
    env = {"HIL_STUB_LAB": name, **stub}
    options = dict(case.jenkins)
    gate_online = options.pop("gate_online", True)
    rig_agent = {"labels": ("qemu-x86_64", "qemu-arm64")} | case.rig_agent
    agents = [
        Agent("lab-qemu", env=env, **rig_agent),
        Agent("lab-1", ("lab-rpi4-01",), env, busy=True),
        Agent("gate", ("hil-gate",), env, online=gate_online),
    ]
    credentials = {"hil-balena-api-key": "test-key", "hil-store-url": STORE_URL}
    jenkins = Jenkins(root / "home", agents=agents, resources=list(resources), scm=root / "scm",
                      path=[bin_dir], credentials=credentials, **options)  # fmt: skip
    if case.prepare == "stale results":
        workspace = jenkins.workspace("lab-qemu")
        (workspace / "results" / "qemux86-64").mkdir(parents=True)
        (workspace / "results" / "qemux86-64" / "junit.xml").write_text(
            "<testsuites><!-- stale --></testsuites>"
        )
        Path(f"{workspace}@tmp").write_text("not a directory: the sh step cannot write its script")
    return jenkins


@pytest.fixture(scope="module")
def busy_lab(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case of CASES and REFUSED, in one JVM."""
    top = tmp_path_factory.mktemp("busy-lab")
    record = top / "hil.jsonl"
    labs: dict[str, tuple[Jenkins, Path]] = {}
    runs, names = [], []
    cases = {**CASES, **{f"refused: {k}": Case(JENKINSFILE, BASE | v) for k, v in REFUSED.items()}}
    for name, case in cases.items():
        lab = case.lab or name
        if lab not in labs:
            resources, stub = SHARED.get(lab, (case.resources, {}))
            root = top / f"lab{len(labs)}"
            labs[lab] = (_jenkins(root, record, lab, case, resources, {**stub, **case.stub}), root)
        jenkins, _ = labs[lab]
        runs.append(Run(jenkins, case.jenkinsfile, case.params, case.abort_sh))
        names.append(name)
    builds = run_together(runs)
    lines = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    out = {}
    for name, build in zip(names, builds, strict=True):
        lab = cases[name].lab or name
        number = str(int(build.archive.parent.name))
        out[name] = Outcome(build, [c for c in lines if c["lab"] == lab and c["build"] == number],
                            labs[lab][1])  # fmt: skip
    return out


def test_before_a_rig_free_after_200_minutes_left_hil_run_seconds_and_the_timeout_cut_it(
    busy_lab: dict[str, Outcome],
) -> None:
    old = busy_lab["rig busy 200 min (before)"].build
    assert (old.result, old.stage(*CELL), old.stage("gate")) == ("ABORTED", "ABORTED", "SKIPPED")
    assert [e.get("timedOut") for e in old.commands("hil run")] == [True]


def test_a_rig_that_is_not_free_in_time_fails_the_cell_with_a_reason_and_the_gate_still_runs(
    busy_lab: dict[str, Outcome],
) -> None:
    new = busy_lab["rig busy 200 min"]
    assert (new.build.result, new.build.stage(*CELL), new.build.stage("gate")) == (
        "FAILURE",
        "FAILURE",
        "SUCCESS",
    )
    assert new.argv("run") == []  # hil never ran: there was no rig to run it on
    assert new.missing() == (
        "qemux86-64: missing: no rig labelled 'hil-qemux86-64 && !hil-unhealthy' was free for 60 minutes\n"
    )
    # hil release gate reads that reason, so its summary and evidence say why too.
    (gate,) = new.argv("release gate")
    assert gate[-2:] == ["--missing-from", "gate/missing.txt"]
    (waited,) = [e for e in new.build.of("lock") if e.get("waiting")]
    assert waited["timeout"] == 60


def test_a_wait_for_a_rig_takes_nothing_from_the_runs_bound(busy_lab: dict[str, Outcome]) -> None:
    new = busy_lab["rig busy 59 min"]
    assert new.build.result == "SUCCESS", new.build.console[-3000:]
    (taken,) = [e for e in new.build.of("lock") if e.get("resources")]
    assert taken["clock"] >= 59 * 60_000
    assert [e["status"] for e in new.build.commands("hil run")] == [0]
    assert "results/qemux86-64/junit.xml" in new.build.stash("results-qemux86-64")
    # No cell is missing: no missing.txt, and the gate is told of none.
    (gate,) = new.argv("release gate")
    assert new.missing() == "" and "--missing-from" not in gate


def test_before_an_agent_that_never_came_aborted_the_build_and_skipped_the_gate(
    busy_lab: dict[str, Outcome],
) -> None:
    old = busy_lab["agent offline (before)"].build
    assert (old.result, old.stage(*CELL), old.stage("gate")) == ("ABORTED", "ABORTED", "SKIPPED")


def test_an_agent_that_never_comes_fails_the_cell_after_its_own_bound_and_the_gate_says_why(
    busy_lab: dict[str, Outcome],
) -> None:
    new = busy_lab["agent offline"]
    assert (new.build.result, new.build.stage(*CELL), new.build.stage("gate")) == (
        "FAILURE",
        "FAILURE",
        "SUCCESS",
    )
    assert new.missing() == (
        "qemux86-64: missing: waiting for agent 'qemu-x86_64' of rig qemu-x86_64#0: no agent labelled "
        "'qemu-x86_64' gave rig qemu-x86_64#0 an executor within 15 minutes\n"
    )
    # The rig was held while the cell waited for its agent (15 minutes), then released.
    assert [e["event"] for e in new.build.events if e["event"] in ("lock", "unlock")] == ["lock", "unlock"]


def test_a_gate_agent_that_never_comes_fails_the_gate_after_its_own_bound(
    busy_lab: dict[str, Outcome],
) -> None:
    new = busy_lab["gate agent offline"].build
    assert (new.result, new.stage(*CELL), new.stage("gate")) == ("FAILURE", "SUCCESS", "FAILURE")
    (failed,) = [e for e in new.of("stage") if e["path"] == ["gate"] and e["status"] == "FAILURE"]
    assert failed["error"] == "no agent labelled 'hil-gate' gave the gate an executor within 15 minutes"


def test_before_a_label_no_resource_carries_skipped_the_gate(busy_lab: dict[str, Outcome]) -> None:
    old = busy_lab["no arm rig (before)"].build
    assert (old.result, old.stage(*ARM_CELL), old.stage("gate")) == ("FAILURE", "FAILURE", "SKIPPED")


def test_a_label_no_resource_carries_is_refused_as_missing_and_the_other_cells_are_gated(
    busy_lab: dict[str, Outcome],
) -> None:
    new = busy_lab["no arm rig"]
    assert (new.build.result, new.build.stage(*ARM_CELL), new.build.stage(*CELL)) == (
        "FAILURE",
        "FAILURE",
        "SUCCESS",
    )
    assert new.build.stage("gate") == "SUCCESS"
    assert new.missing() == (
        "generic-aarch64: missing: taking a rig labelled 'hil-generic-aarch64 && !hil-unhealthy': The "
        "resource label does not exist: hil-generic-aarch64 && !hil-unhealthy.\n"
    )
    assert [e["name"] for e in new.build.of("unstash")] == ["results-qemux86-64"]


def test_before_a_failed_checkout_skipped_the_gate(busy_lab: dict[str, Outcome]) -> None:
    old = busy_lab["checkout fails (before)"].build
    assert (old.result, old.stage(*CELL), old.stage("gate")) == ("FAILURE", "FAILURE", "SKIPPED")


def test_a_failed_checkout_is_refused_as_missing_with_gits_reason(busy_lab: dict[str, Outcome]) -> None:
    new = busy_lab["checkout fails"]
    assert (new.build.result, new.build.stage("gate")) == ("FAILURE", "SUCCESS")
    assert new.missing().startswith(
        "qemux86-64: missing: checking out the project on lab-qemu: hudson.plugins.git.GitException"
    )
    assert new.argv("run") == []


def test_before_a_shell_that_could_not_start_let_the_gate_read_an_earlier_builds_results(
    busy_lab: dict[str, Outcome],
) -> None:
    old = busy_lab["stale results (before)"]
    assert old.build.stash("results-qemux86-64") == ["results/qemux86-64/junit.xml"]
    (gate,) = [e for e in old.build.of("unstash")]
    assert gate["files"] == ["results/qemux86-64/junit.xml"] and old.argv("run") == []


def test_the_results_folder_is_cleared_before_anything_that_can_fail(busy_lab: dict[str, Outcome]) -> None:
    new = busy_lab["stale results"]
    assert "results-qemux86-64" not in new.build.stashes()
    assert (
        new.missing()
        == "qemux86-64: missing: hil run on rig qemu-x86_64#0 wrote no results/qemux86-64/junit.xml\n"
    )
    assert not (new.build.archive / "results").exists()


def test_before_two_allure_installations_lost_the_report(busy_lab: dict[str, Outcome]) -> None:
    old = busy_lab["two allures (before)"].build
    assert old.result == "UNSTABLE" and old.of("allure") == []
    assert "Multiple Allure CLI installations found" in old.console


def test_the_allure_report_names_its_installation(busy_lab: dict[str, Outcome]) -> None:
    new = busy_lab["two allures"].build
    assert new.result == "SUCCESS", new.console[-3000:]
    assert [(e["commandline"], e["paths"]) for e in new.of("allure")] == [
        ("allure", ["results/qemux86-64/allure-results"])
    ]


def _pwned(root: Path) -> list[Path]:
    return sorted(root.rglob("pwned*"))


def test_before_an_image_path_ran_as_shell_code_with_the_balena_key_in_scope(
    busy_lab: dict[str, Outcome],
) -> None:
    old = busy_lab["quoted image (before)"]
    assert [p.parent.name for p in _pwned(old.root)] == ["hil"]  # in the gate's workspace


def test_an_image_path_with_quotes_command_substitution_and_spaces_reaches_hil_as_it_is(
    busy_lab: dict[str, Outcome],
) -> None:
    new = busy_lab["quoted image"]
    assert new.build.result == "SUCCESS", new.build.console[-3000:]
    (run,) = new.argv("run")
    assert run[run.index("--image") :][:2] == ["--image", HOSTILE_IMAGE]
    (gate,) = new.argv("release gate")
    assert gate[gate.index("--balena") :] == ["--balena", "--image", f"qemux86-64={HOSTILE_IMAGE}"]
    assert _pwned(new.root) == []
    # Every file the build stashed, archived or published lies in the build's own folders.
    touched = [
        f
        for e in new.build.events
        if e["event"] in ("stash", "archiveArtifacts", "junit")
        for f in e["files"]
    ]
    assert touched and all(f.startswith(("results/qemux86-64/", "gate/")) for f in touched), touched


def test_before_device_types_and_suites_from_the_parameters_reached_paths_and_globs(
    busy_lab: dict[str, Outcome],
) -> None:
    (allure,) = busy_lab["device type ../ (before)"].build.of("allure")
    assert "results/../../x/allure-results" in allure["paths"]
    (run,) = busy_lab["suite * (before)"].argv("run")
    assert "gate.yaml" in run and "*" not in run  # `--suite *` became the workspace's files


@pytest.mark.parametrize("name", list(REFUSED))
def test_hostile_parameters_are_refused_before_any_rig_is_taken(
    busy_lab: dict[str, Outcome], name: str
) -> None:
    refused = busy_lab[f"refused: {name}"]
    build = refused.build
    assert (build.result, build.stage("parameters"), build.stage("suites"), build.stage("gate")) == (
        "FAILURE", "FAILURE", "SKIPPED", "SKIPPED"
    )  # fmt: skip
    assert [e for e in build.events if e["event"] in ("lock", "node", "sh", "stash", "allure")] == []
    assert refused.commands == [] and _pwned(refused.root) == []


def test_before_the_first_free_rig_was_handed_out_even_when_hil_refused_it(
    busy_lab: dict[str, Outcome],
) -> None:
    old = busy_lab["bad rig (before)"]
    assert old.build.result == "FAILURE"
    assert [e["resources"] for e in old.build.of("lock") if e.get("resources")] == [["qemu-x86_64#0"]]


def test_the_health_job_takes_a_bad_rig_out_of_the_pool_and_no_cell_gets_it(
    busy_lab: dict[str, Outcome],
) -> None:
    health = busy_lab["health finds the bad rig"].build
    assert health.result == "UNSTABLE"
    assert "hil-unhealthy" in health.labels("qemu-x86_64#0")
    assert "hil-unhealthy" not in health.labels("qemu-x86_64#1")
    assert health.description == "qemu-x86_64#0: unhealthy: failed its check; qemu-x86_64#1: healthy"
    cell = busy_lab["bad rig"].build
    assert cell.result == "SUCCESS", cell.console[-3000:]
    assert [e["resources"] for e in cell.of("lock") if e.get("resources")] == [["qemu-x86_64#1"]]


def test_a_check_that_passes_puts_the_rig_back(busy_lab: dict[str, Outcome]) -> None:
    health = busy_lab["health passes a repaired rig"].build
    assert health.result == "SUCCESS"
    assert health.labels("qemu-x86_64#0") == ("hil-qemux86-64", "qemu-x86_64#0")


def test_a_run_that_leaves_its_rig_unhealthy_takes_it_out_so_the_next_cell_gets_another(
    busy_lab: dict[str, Outcome],
) -> None:
    first, second = (
        busy_lab["a run leaves its rig unhealthy"].build,
        busy_lab["the next cell takes another rig"].build,
    )
    assert first.result == "FAILURE" and "hil-unhealthy" in first.labels("qemu-x86_64#0")
    assert second.result == "SUCCESS", second.console[-3000:]
    assert [e["resources"] for e in second.of("lock") if e.get("resources")] == [["qemu-x86_64#1"]]


def test_before_the_health_job_held_a_rig_until_its_timeout_aborted_it(busy_lab: dict[str, Outcome]) -> None:
    old = busy_lab["health, agent busy (before)"].build
    assert old.result == "ABORTED"
    # It took the rig's lock, then waited for the busy executor holding it, until the stage's timeout.
    assert [e["event"] for e in old.events if e["event"] in ("lock", "node", "unlock")] == [
        "lock",
        "node",
        "unlock",
    ]


def test_the_health_job_reports_a_busy_agent_as_busy_holding_no_lock(busy_lab: dict[str, Outcome]) -> None:
    new = busy_lab["health, agent busy"].build
    assert new.result == "SUCCESS", new.console[-3000:]
    assert new.description == "lab-rpi4-01: busy: agent lab-1 had no free executor for 30 minutes"
    assert new.of("lock") == []


def test_the_health_job_reports_a_rig_a_build_holds_as_busy(busy_lab: dict[str, Outcome]) -> None:
    new = busy_lab["health, rig busy"]
    assert new.build.result == "SUCCESS", new.build.console[-3000:]
    assert new.build.description == "qemu-x86_64#0: busy: a build holds it"
    assert new.argv("rig check") == []


def test_the_health_job_reports_a_rig_a_technician_holds_as_busy_and_leaves_its_labels(
    busy_lab: dict[str, Outcome],
) -> None:
    new = busy_lab["health, hil lease held"].build
    assert new.result == "SUCCESS", new.console[-3000:]
    assert new.description == "qemu-x86_64#0: busy: its hil lease is held (health/qemu-x86_64#0.log)"
    assert new.labels("qemu-x86_64#0") == ("hil-qemux86-64", "qemu-x86_64#0")


def test_an_abort_stops_the_build_and_the_gate_does_not_run(busy_lab: dict[str, Outcome]) -> None:
    aborted = busy_lab["abort"].build
    assert (aborted.result, aborted.stage(*CELL), aborted.stage("gate")) == ("ABORTED", "ABORTED", "SKIPPED")


def test_with_a_shared_store_the_runs_are_recorded_there_and_gated_by_the_builds_tag_on_any_hil_agent(
    busy_lab: dict[str, Outcome],
) -> None:
    new = busy_lab["shared store"]
    assert (new.build.result, new.build.stage(*CELL), new.build.stage("gate")) == (
        "SUCCESS",
        "SUCCESS",
        "SUCCESS",
    )
    (run,) = [c for c in new.commands if c["argv"][:1] == ["run"]]
    (gate,) = [c for c in new.commands if c["argv"][:2] == ["release", "gate"]]
    tag = run["tag"]
    assert tag == f"jenkins-hil-{new.build.archive.parent.name}" and run["store"] == STORE_URL
    assert gate["argv"] == ["release", "gate", "7", "--build-tag", tag, "--report-dir", "gate"]
    assert (gate["store"], gate["tag"], gate["node"]) == (STORE_URL, tag, "lab-qemu")  # hil-gate is offline
    # No JUnit travels by stash: only the Allure results, for the build's one report.
    assert new.build.stashes() == ["allure-qemux86-64"]
    assert new.build.stash("allure-qemux86-64") == ["results/qemux86-64/allure-results/1-result.json"]
    assert [(e["commandline"], e["paths"]) for e in new.build.of("allure")] == [
        ("allure", ["results/qemux86-64/allure-results"])
    ]
    assert STORE_URL not in new.build.console and new.missing() == ""


def test_with_a_shared_store_a_missing_cell_is_still_refused_with_its_reason(
    busy_lab: dict[str, Outcome],
) -> None:
    new = busy_lab["shared store, no arm rig"]
    assert (new.build.result, new.build.stage(*ARM_CELL), new.build.stage("gate")) == (
        "FAILURE", "FAILURE", "SUCCESS"
    )  # fmt: skip
    assert new.missing().startswith(
        "generic-aarch64: missing: taking a rig labelled 'hil-generic-aarch64 && !hil-unhealthy'"
    )
    (gate,) = new.argv("release gate")
    assert "--build-tag" in gate and "--results" not in gate
    assert gate[-2:] == ["--missing-from", "gate/missing.txt"]


def test_a_store_credential_jenkins_does_not_have_fails_the_cell_saying_so(
    busy_lab: dict[str, Outcome],
) -> None:
    new = busy_lab["shared store, no credential"]
    assert (new.build.result, new.build.stage(*CELL), new.build.stage("gate")) == (
        "FAILURE",
        "FAILURE",
        "FAILURE",
    )
    assert new.argv("run") == [] and new.argv("release gate") == []
    assert new.missing() == (
        "qemux86-64: missing: reading credential 'no-such-credential' on lab-qemu: Could not find "
        "credentials entry with ID 'no-such-credential'\n"
    )


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
        (e["event"], e["variable"] if e["event"] == "lock" else e["label"])
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


def test_a_cell_with_no_rig_reaches_the_real_gates_summary_and_evidence_with_its_reason(lab: Lab) -> None:
    # No resource carries the pool's label: the cell fails before it has a workspace, and hil's own gate
    # (no board boots) refuses the device type with the cell's reason, not only "no results".
    image = write_image(lab.root / "images" / "hil-1.0.0.img", version="1.0.0")
    release = lab.draft(image)
    build = lab.jenkins().run(JENKINSFILE, _params(release, image))
    assert (build.result, build.stage("gate")) == ("FAILURE", "FAILURE"), build.console[-6000:]
    assert [e["status"] for e in build.commands("hil release gate")] == [1]
    assert lab.status(release) == "draft"
    why = "taking a rig labelled 'hil-qemux86-64 && !hil-unhealthy': The resource label does not exist"
    gate = build.archive / "gate"
    assert f"- qemux86-64: missing: {why}" in (gate / "summary.md").read_text()
    assert f"<li>qemux86-64: missing: {html.escape(why)}" in (gate / "summary.html").read_text()
    evidence = json.loads((gate / "evidence.json").read_text())
    assert evidence["missing"]["from"] == "gate/missing.txt"
    assert evidence["missing"]["device_types"]["qemux86-64"].startswith(why)


@pytest.mark.qemu
@pytest.mark.slow
def test_the_health_job_checks_the_twin_through_its_own_lock(lab: Lab) -> None:
    jenkins = lab.jenkins(Resource(lab.twin, ("hil-qemux86-64", lab.twin)))
    build = jenkins.run(RIG_HEALTH, {"AGENT": "rigs-twin", "RIGS": lab.twin, "KNOWN_GOOD": ""})
    assert build.result == "SUCCESS", build.console[-6000:]
    # The agent first, holding no lock while it waits; then the rig's lock, which never waits.
    assert [e["event"] for e in build.events if e["event"] in ("lock", "node")] == ["node", "lock"]
    assert [e["status"] for e in build.commands("hil rig check")] == [0]
    listed = lab.hil("rig", "list")
    assert any(line.startswith(lab.twin) and "healthy" in line for line in listed.stdout.splitlines())
