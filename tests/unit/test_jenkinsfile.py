"""The Jenkins pipelines keep the rules Declarative Pipeline and its plugins impose, and every `hil` command
they run is one hil's CLI accepts.

Each rule comes from how the plugins evaluate a pipeline (jenkins/Jenkinsfile's header says which source),
not from the pipelines' text, and each has a test on the pipelines as they were before issue 14
(tests/support/fixtures/jenkins_before/), which broke it: a rule that could not fail would prove nothing.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hil.commands.main import build_parser
from tests.support.jenkins_harness import Agent, Build, Jenkins, Resource
from tests.support.jenkinsfile_model import Model, load, minutes, parse, shell_lines, timeout_words

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = sorted((ROOT / "jenkins").glob("*Jenkinsfile"))
BEFORE = Path(__file__).parents[1] / "support" / "fixtures" / "jenkins_before"
# hil commands that drive a board: their run time is the board's, so they carry a bound of their own.
BOARD_COMMANDS = ("hil run", "hil rig check")
# Steps that publish or hand on files from the workspace, and the argument naming them.
PUBLISHERS = {"junit": "testResults", "stash": "includes", "archiveArtifacts": "artifacts"}


@pytest.fixture(scope="module", autouse=True)
def _parsed_at_once() -> None:
    """Every Jenkinsfile these tests read, parsed in one JVM."""
    load(*PIPELINES, BEFORE / "Jenkinsfile", BEFORE / "rig-health.Jenkinsfile")


@pytest.fixture(params=[p.name for p in PIPELINES])
def pipeline(request: pytest.FixtureRequest) -> Model:
    return load(ROOT / "jenkins" / request.param)


def before(name: str) -> Model:
    return load(BEFORE / name)


# ---- rules


def options_read_what_the_build_has_not_set(model: Model) -> list[str]:
    """Stage `options` arguments are evaluated when the model is built, at the start of the build
    (RuntimeASTTransformer puts them in the model as they are); a matrix cell's axis values, a lock's
    variable and everything else in `env` exist only once the stage runs."""
    found = []
    for call in model.calls:
        if call.section != "options" or not call.stage:
            continue
        values = [*call.node["named"].values(), *call.node["args"]]
        names = {v for value in values for v in value["vars"]} - model.script_vars - {"params"}
        names |= {f"env.{e}" for value in values for e in value["env"]}
        if names:
            where = f"{model.name}: stage {'/'.join(call.stage)!r}: options {call.name}()"
            found.append(f"{where} reads {', '.join(sorted(names))}, which the build has not set when "
                         "options are evaluated")  # fmt: skip
    return found


def locks_that_are_not_label_locks(model: Model) -> list[str]:
    """lockable-resources: a label lock in Declarative passes `resource: null` (README); a lock by a name no
    resource has creates an ephemeral resource that guards nothing, where a label no resource carries
    fails at once (LockStepResource.validate)."""
    found = []
    for call in model.steps("lock"):
        resource, where = call.arg("resource"), f"{model.name}:{call.node['line']}"
        if call.arg("label") is None or call.node["args"]:
            named = call.text("resource") or call.text()
            found.append(f"{where}: lock by resource name ({named}): a name no resource has becomes an "
                         "ephemeral lock; lock by label")  # fmt: skip
        elif resource is None or not resource.get("literal") or resource["const"] is not None:
            found.append(f"{where}: label lock without `resource: null`")
    return found


def locks_taken_after_an_agent(model: Model) -> list[str]:
    """A stage enters its options (lock) before its agent; a lock inside `node`, or in the steps of a stage
    with an agent, holds an executor while it waits, and on a single-executor agent the holder of the
    rig can wait for that executor forever."""
    return [
        f"{model.name}:{call.node['line']}: lock taken inside {', '.join(w['name'] for w in held)}"
        for call in model.steps("lock")
        if (held := call.enclosed_by("node", "agent"))
    ]


def allure_not_once_after_the_cells(model: Model) -> list[str]:
    """allure-plugin issue 358: each `allure` call archives the same report, so only one survives: run it
    once, outside the matrix, over every cell; and last in its block, since in `post` the first step that
    throws (no Allure tool on the agent) skips the rest of the block."""
    calls = model.steps("allure")
    found = [] if len(calls) <= 1 else [f"{model.name}: allure is called {len(calls)} times"]
    for call in calls:
        if call.axes:
            found.append(f"{model.name}:{call.node['line']}: allure runs in every matrix cell")
        later = [c for c in model.in_stage(call.stage) if c.section == call.section and c.order > call.order]
        if later:
            found.append(
                f"{model.name}:{call.node['line']}: {later[0].name} follows allure in {call.section}"
            )
    return found


def _folder(pattern: str) -> str:
    return pattern.strip().split("/", 1)[0]


def stages_that_publish_without_starting_clean(model: Model) -> list[str]:
    """`hil run` does not clear its output folder, unstash adds to a workspace, and an agent reuses its
    workspace from build to build: a stage that publishes or gates results first removes their folder,
    before anything writes into it."""
    found = []
    for stage in model.stages:
        calls = model.in_stage(stage)
        folders = {
            _folder(p) for c in calls if c.name in PUBLISHERS for p in c.text(PUBLISHERS[c.name]).split(",")
        }
        folders |= {m for c in calls if c.name == "sh" for m in re.findall(r"--results\s+(\S+)", c.script)}
        writers = [c for c in calls if c.name in ("sh", "unstash", "deleteDir")]
        if not folders or not writers:
            continue
        first = writers[0]
        line = shell_lines(first.script)[0] if first.name == "sh" else ""
        cleaned = set(line.split()[2:]) if re.match(r"rm -(rf|fr) ", line) else set()
        if first.name != "deleteDir" and not folders <= cleaned:
            write = f"{first.name} at line {first.node['line']}"
            found.append(f"{model.name}: stage {'/'.join(stage)!r} publishes {', '.join(sorted(folders))} "
                         f"without removing it first (its first write is {write})")  # fmt: skip
    return found


def catches_that_swallow_aborts(model: Model) -> list[str]:
    """workflow-basic-steps CatchErrorStep: with catchInterruptions (default true) an abort or a timeout is
    caught, the build goes on and ends ABORTED; the pipelines catch failures only."""
    return [
        f"{model.name}:{call.node['line']}: {call.name} without catchInterruptions: false"
        for call in model.steps("catchError", "warnError")
        if (call.arg("catchInterruptions") or {}).get("const") is not False
    ]


def waits_the_build_timeout_would_cut(model: Model) -> list[str]:
    """Waiting for a rig is bounded by a stage's timeout, and the stages' bounds fit inside the build's,
    so the build's own timeout never kills the gate: a stage that runs out of time fails on its own."""
    build = model.build_minutes()
    found = [
        f"{model.name}:{call.node['line']}: the wait for this lock is bounded by the build's timeout alone"
        for call in model.steps("lock")
        if not [w for w in call.enclosed_by("timeout") if minutes(w) < build]
    ]
    total = sum(model.bound(top) for top in model.top)
    if total >= build:
        found.append(f"{model.name}: the stages may take {total:g} minutes, the build's timeout is {build:g}")
    for path in model.stages:
        runs = [c for c in model.in_stage(path) if c.section == "steps"]
        bounded = any(
            minutes(o) < build
            for p in _ancestry(path)
            for o in model.stages[p].options
            if o["name"] == "timeout"
        )
        if runs and not bounded:
            found.append(f"{model.name}: stage {'/'.join(path)!r} runs steps with no timeout of its own")
    return found


def _ancestry(path: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [path[:i] for i in range(1, len(path) + 1)]


def board_commands_without_a_bound_of_their_own(model: Model) -> list[str]:
    """A Jenkins timeout ends a step as an abort (the gate skipped, a health check ABORTED); a hil command
    that drives a board runs under coreutils `timeout`, shorter than the Jenkins timeouts around it, so a
    hang is an ordinary failure the pipeline records."""
    found = []
    for call in model.steps("sh"):
        for line in shell_lines(call.script):
            bound = timeout_words(line)
            command = " ".join(bound[1]) if bound else line
            if not command.startswith(BOARD_COMMANDS):
                continue
            jenkins = min((minutes(w) for w in call.enclosed_by("timeout")), default=float("inf"))
            where = f"{model.name}:{call.node['line']}"
            if bound is None:
                found.append(f"{where}: {command.split(' --')[0]} runs with no bound of its own")
            elif bound[0] >= jenkins:
                found.append(f"{where}: its bound ({bound[0]:g} min) is not below the Jenkins timeout "
                             f"around it ({jenkins:g} min)")  # fmt: skip
    return found


def stashes_of_more_than_the_gate_reads(model: Model) -> list[str]:
    """workflow-basic-steps: stash and unstash are for small files (a tarball through the controller);
    hand the gate its JUnit XML and Allure results, not the logs and transcripts."""
    return [
        f"{model.name}:{call.node['line']}: stash includes {pattern.strip()!r}"
        for call in model.steps("stash")
        for pattern in call.text("includes").split(",")
        if not (pattern.strip().endswith(".xml") or "/allure-results/" in pattern)
    ]


def cells_whose_junit_names_them_not(model: Model) -> list[str]:
    """Jenkins prefixes each cell's tests with its stage path, but pytest names every suite "pytest": each
    matrix cell's `hil run` names its JUnit suite after the cell's axis values."""
    found = []
    for call in model.steps("sh"):
        if not call.axes:
            continue
        for line in shell_lines(call.script):
            if "hil run" not in line:
                continue
            names = re.findall(r"junit_suite_name=(\S+)", line)
            if not any(f"${axis}" in n or f"${{{axis}}}" in n for n in names for axis in call.axes):
                found.append(
                    f"{model.name}:{call.node['line']}: hil run in a matrix cell keeps pytest's suite name"
                )
    return found


# ---- the pipelines keep every rule

RULES = [
    options_read_what_the_build_has_not_set,
    locks_that_are_not_label_locks,
    locks_taken_after_an_agent,
    allure_not_once_after_the_cells,
    stages_that_publish_without_starting_clean,
    catches_that_swallow_aborts,
    waits_the_build_timeout_would_cut,
    board_commands_without_a_bound_of_their_own,
    stashes_of_more_than_the_gate_reads,
    cells_whose_junit_names_them_not,
]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_the_pipeline_breaks_no_rule(pipeline: Model, rule: Callable[[Model], list[str]]) -> None:
    assert rule(pipeline) == [], rule.__doc__


def test_every_device_type_the_pipeline_gates_has_rules_in_the_gate_policy() -> None:
    from hil.release.policy import load_policy

    model = load(ROOT / "jenkins" / "Jenkinsfile")
    cells = {v for stage in model.stages.values() for v in stage.axes.get("DEVICE_TYPE", [])}
    ruled = set(load_policy(ROOT / "gate.yaml").model.device_types)
    assert cells and cells <= ruled, f"the pipeline gates {sorted(cells - ruled)}: gate.yaml has no rules"


def test_the_matrix_has_a_cell_for_every_device_type_a_build_runs() -> None:
    model = load(ROOT / "jenkins" / "Jenkinsfile")
    cells = {v for stage in model.stages.values() for v in stage.axes.get("DEVICE_TYPE", [])}
    assert str(model.params["DEVICE_TYPES"]).split() == sorted(cells)
    images = dict(line.split("=", 1) for line in str(model.params["IMAGES"]).splitlines())
    assert sorted(images) == sorted(cells)


# ---- the pipelines before issue 14 broke them


def test_before_the_lock_label_read_the_matrix_axis_in_options_so_every_build_failed() -> None:
    assert options_read_what_the_build_has_not_set(before("Jenkinsfile")) == [
        "Jenkinsfile: stage 'suites/on a rig': options lock() reads DEVICE_TYPE, which the build has not set "
        "when options are evaluated"
    ]


def test_before_the_label_lock_had_no_null_resource_and_the_health_check_locked_by_name() -> None:
    assert [v.split(": ", 1)[1] for v in locks_that_are_not_label_locks(before("Jenkinsfile"))] == [
        "label lock without `resource: null`"
    ]
    assert "ephemeral" in " ".join(locks_that_are_not_label_locks(before("rig-health.Jenkinsfile")))


def test_before_the_health_check_took_the_agent_then_waited_for_the_rig() -> None:
    assert [v.split(": ", 1)[1] for v in locks_taken_after_an_agent(before("rig-health.Jenkinsfile"))] == [
        "lock taken inside agent"
    ]


def test_before_every_cell_ran_allure_and_a_missing_tool_skipped_the_stash() -> None:
    found = allure_not_once_after_the_cells(before("Jenkinsfile"))
    assert any("allure runs in every matrix cell" in v for v in found)
    assert any("archiveArtifacts follows allure" in v for v in found)


def test_before_neither_the_cells_nor_the_gate_cleared_old_results() -> None:
    found = stages_that_publish_without_starting_clean(before("Jenkinsfile"))
    assert [v.split(" publishes")[0] for v in found] == [
        "Jenkinsfile: stage 'suites/on a rig'",
        "Jenkinsfile: stage 'gate'",
    ]


def test_before_catch_error_swallowed_aborts_in_both_pipelines() -> None:
    assert len(catches_that_swallow_aborts(before("Jenkinsfile"))) == 2
    assert len(catches_that_swallow_aborts(before("rig-health.Jenkinsfile"))) == 1


def test_before_the_wait_for_a_rig_was_bounded_only_by_the_builds_timeout() -> None:
    assert [v.split(": ", 1)[1] for v in waits_the_build_timeout_would_cut(before("Jenkinsfile"))] == [
        "the wait for this lock is bounded by the build's timeout alone"
    ]


def test_before_a_hung_board_command_was_ended_by_jenkins_alone() -> None:
    assert len(board_commands_without_a_bound_of_their_own(before("Jenkinsfile"))) == 1
    assert len(board_commands_without_a_bound_of_their_own(before("rig-health.Jenkinsfile"))) == 1


def test_before_the_stash_carried_every_log_of_the_cell() -> None:
    assert [v.split(": ", 1)[1] for v in stashes_of_more_than_the_gate_reads(before("Jenkinsfile"))] == [
        "stash includes 'results/$DEVICE_TYPE/**'"
    ]


def test_before_every_cells_junit_suite_was_called_pytest() -> None:
    assert len(cells_whose_junit_names_them_not(before("Jenkinsfile"))) == 1


# ---- what Jenkins would run

IMAGES = "qemux86-64=/srv/images/a b.img\ngeneric-aarch64=/srv/images/balena.img.zip"
UNKNOWN = "pipeline { agent any\n stages { stage('x') { steps { sh 'hil run --rigg qemu-x86_64' } } } }\n"
MAIN, HEALTH = ROOT / "jenkins" / "Jenkinsfile", ROOT / "jenkins" / "rig-health.Jenkinsfile"
# name -> (Jenkinsfile, parameters); one JVM runs them all, in this order. None: UNKNOWN.
BUILDS = {
    "stale workspace": (MAIN, {"RELEASE": "7", "DEVICE_TYPES": "qemux86-64"}),
    "defaults": (MAIN, {"RELEASE": "7"}),
    "balena": (MAIN, {"RELEASE": "b2f4c1e", "BALENA": True, "IMAGES": IMAGES}),
    "health": (HEALTH, {"AGENT": "lab-1", "RIGS": "lab-rpi4-01", "KNOWN_GOOD": ""}),
    "health with an image": (HEALTH, {"AGENT": "lab-1", "RIGS": "lab-rpi4-01", "KNOWN_GOOD": "/srv/g.img"}),
    "before": (BEFORE / "Jenkinsfile", {"RELEASE": "7"}),
    "unknown command": (None, {}),
}


@dataclass(frozen=True)
class Recorded:
    build: Build
    commands: list[dict]  # each hil command line: its arguments, and the files under ./results then


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Recorded]:
    """The builds above, in a lab whose `hil` records its arguments and the files under ./results, and
    succeeds: fast, and enough to check what the pipelines would run (hil's parser checks the arguments).
    The first build finds the workspaces holding an earlier build's passing results."""
    root = tmp_path_factory.mktemp("recording-lab")
    bin_dir, record = root / "bin", root / "record.jsonl"
    bin_dir.mkdir()
    (bin_dir / "hil").write_text(f"""#!{sys.executable} -I
import json, os, sys
from pathlib import Path
results = Path("results")
files = sorted(str(p) for p in results.rglob("*") if p.is_file()) if results.is_dir() else []
with open({str(record)!r}, "a") as out:
    line = {{"build": os.environ["BUILD_NUMBER"], "argv": sys.argv[1:], "results": files}}
    out.write(json.dumps(line) + "\\n")
""")
    (bin_dir / "hil").chmod(0o755)
    (root / "scm").mkdir()
    (root / "unknown.Jenkinsfile").write_text(UNKNOWN)
    agents = [
        Agent("lab-qemu", ("qemu-x86_64", "qemu-arm64")),
        Agent("lab-1", ("lab-rpi4-01",)),
        Agent("gate", ("hil-gate",)),
    ]
    resources = [
        Resource("qemu-x86_64#0", ("hil-qemux86-64", "qemu-x86_64#0")),
        Resource("qemu-arm64#0", ("hil-generic-aarch64", "qemu-arm64#0")),
        Resource("lab-rpi4-01", ("hil-raspberrypi4-64", "lab-rpi4-01")),
    ]
    jenkins = Jenkins(root / "home", agents=agents, resources=resources, scm=root / "scm", path=[bin_dir],
                      credentials={"hil-balena-api-key": "test-key"})  # fmt: skip
    for agent, device_type in (("gate", "raspberrypi4-64"), ("lab-qemu", "qemux86-64")):
        stale = jenkins.workspace(agent) / "results" / device_type / "junit.xml"
        stale.parent.mkdir(parents=True)
        stale.write_text("<testsuites/>")
    unknown = root / "unknown.Jenkinsfile"
    builds = jenkins.run_many([(path or unknown, params) for path, params in BUILDS.values()])
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    return {
        name: Recorded(build, [c for c in lines if c["build"] == str(number)])
        for number, (name, build) in enumerate(zip(BUILDS, builds, strict=True), start=1)
    }


def _rejected(commands: list[dict]) -> list[str]:
    """The recorded command lines hil's parser refuses."""
    parser, rejected = build_parser(), []
    for command in commands:
        try:
            parser.parse_args(command["argv"])
        except SystemExit:
            rejected.append(shlex.join(["hil", *command["argv"]]))
    return rejected


@pytest.mark.parametrize("name", ["defaults", "balena", "health", "health with an image"])
def test_every_hil_command_a_build_runs_is_accepted_by_the_cli(
    recorded: dict[str, Recorded], name: str
) -> None:
    build, commands = recorded[name].build, recorded[name].commands
    assert commands, f"{name}: ran no hil command:\n{build.console[-3000:]}"
    assert _rejected(commands) == []
    assert build.result == "SUCCESS", build.console[-3000:]


def test_a_command_the_cli_does_not_know_is_caught(recorded: dict[str, Recorded]) -> None:
    assert _rejected(recorded["unknown command"].commands) == ["hil run --rigg qemu-x86_64"]


def test_an_image_path_with_a_space_reaches_hil_as_one_argument(recorded: dict[str, Recorded]) -> None:
    commands = [c["argv"] for c in recorded["balena"].commands]
    runs, gate = [c for c in commands if c[:1] == ["run"]], commands[-1]
    images = sorted(r[r.index("--image") + 1] for r in runs)
    assert images == ["/srv/images/a b.img", "/srv/images/balena.img.zip"]
    assert gate[gate.index("--image") :] == [
        "--image", "generic-aarch64=/srv/images/balena.img.zip", "--image", "qemux86-64=/srv/images/a b.img"
    ]  # fmt: skip


def test_a_reused_workspace_lends_the_gate_no_earlier_results(recorded: dict[str, Recorded]) -> None:
    stale = recorded["stale workspace"]
    gate = [c for c in stale.commands if c["argv"][:2] == ["release", "gate"]]
    assert [c["results"] for c in gate] == [[]]
    assert stale.build.stash("results-qemux86-64") == []


def test_the_pipeline_before_failed_every_build_while_its_model_was_built(
    recorded: dict[str, Recorded],
) -> None:
    before_issue = recorded["before"]
    assert before_issue.build.result == "FAILURE"
    assert [e["message"] for e in before_issue.build.of("error")] == [
        "groovy.lang.MissingPropertyException: No such property: DEVICE_TYPE for class: OptionsDsl"
    ]
    assert before_issue.build.of("stage") == [] and before_issue.commands == []


def test_a_pipeline_with_a_syntax_error_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "Jenkinsfile"
    broken.write_text("pipeline {\n  stages { stage('x') { steps { sh 'hil run' }\n}\n")
    with pytest.raises(AssertionError, match="does not parse as Groovy"):
        parse(broken)
