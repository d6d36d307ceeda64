"""The Jenkins pipelines keep the rules Declarative Pipeline and its plugins impose, and every `hil` command
they run is one hil's CLI accepts.

Each rule comes from how the plugins evaluate a pipeline (jenkins/Jenkinsfile's header says which source),
not from the pipelines' text, and each has a test on the pipelines as they were before issue 14 or issue 22
(tests/support/fixtures/jenkins_before*/), which broke it: a rule that could not fail would prove nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hil.commands.main import build_parser
from hil.release.missing import read_missing
from tests.support.jenkins_harness import Agent, Build, Jenkins, Resource
from tests.support.jenkinsfile_model import (
    BLOCKING,
    INF,
    Call,
    Model,
    load,
    parse,
    shell_lines,
    timeout_words,
)

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = sorted((ROOT / "jenkins").glob("*Jenkinsfile"))
BEFORE = Path(__file__).parents[1] / "support" / "fixtures" / "jenkins_before"
BEFORE_22 = BEFORE.with_name("jenkins_before_22")
# hil commands that drive a board: their run time is the board's, so they carry a bound of their own.
BOARD_COMMANDS = ("hil run", "hil rig check")
# Steps that publish or hand on files from the workspace, and the argument naming them.
PUBLISHERS = {"junit": "testResults", "stash": "includes", "archiveArtifacts": "artifacts"}


@pytest.fixture(scope="module", autouse=True)
def _parsed_at_once() -> None:
    """Every Jenkinsfile these tests read, parsed in one JVM."""
    load(*PIPELINES, *(d / n for d in (BEFORE, BEFORE_22) for n in ("Jenkinsfile", "rig-health.Jenkinsfile")))


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


def locks_by_resource_name(model: Model) -> list[str]:
    """lockable-resources: a lock by a name no resource has creates an ephemeral resource that guards
    nothing, where a label no resource carries fails at once (LockStepResource.validate). (A label lock
    needs no `resource: null`: LockStep ignores a null resource.)"""
    return [
        f"{model.name}:{call.line}: lock by resource name ({call.text('resource') or call.text()}): a name "
        "no resource has becomes an ephemeral lock; lock by label"
        for call in model.steps("lock")
        if call.arg("label") is None or call.node["args"]
    ]


def _waits(model: Model, call: Call) -> bool:
    """A lock that can wait (not skipIfLocked), or any node: both wait for something another build has."""
    return call.name == "node" or (call.name == "lock" and model.lock_wait(call.node, call.within) > 0)


def locks_that_wait_holding_an_executor(model: Model) -> list[str]:
    """A stage enters its options (lock) before its agent; a lock that waits inside `node`, or in the
    steps of a stage with an agent, holds an executor while it waits, and on a single-executor agent the
    holder of the rig can wait for that executor forever. A lock that never waits (skipIfLocked) may."""
    return [
        f"{model.name}:{call.line}: a lock that waits, taken inside {', '.join(w['name'] for w in held)}"
        for call in model.steps("lock")
        if _waits(model, call) and (held := call.enclosed_by("node", "agent"))
    ]


def allure_not_once_after_the_cells(model: Model) -> list[str]:
    """allure-plugin issue 358: each `allure` call archives the same report, so only one survives: run it
    once, outside the matrix, over every cell; and last in its block, since in `post` the first step that
    throws (no Allure tool on the agent) skips the rest of the block."""
    calls = model.steps("allure")
    found = [] if len(calls) <= 1 else [f"{model.name}: allure is called {len(calls)} times"]
    for call in calls:
        if call.axes:
            found.append(f"{model.name}:{call.line}: allure runs in every matrix cell")
        block = call.within
        later = [
            c for c in model.in_stage(call.stage)
            if c.section == call.section and c.order > call.order and c.within[: len(block)] == block
        ]  # fmt: skip
        if later:
            found.append(f"{model.name}:{call.line}: {later[0].name} follows allure in {call.section}")
    return found


def allure_without_a_commandline(model: Model) -> list[str]:
    """allure-plugin AllureReportPublisher: with no `commandline`, the step takes the only Allure
    installation there is, and throws when Jenkins has several; name the installation."""
    return [
        f"{model.name}:{call.line}: allure names no commandline installation"
        for call in model.steps("allure")
        if model.resolve(call.arg("commandline"), call.within) is None
    ]


def _folder(pattern: str) -> str:
    return pattern.strip().split("/", 1)[0]


def _cleans(model: Model, call: Call) -> set[str]:
    """The folders a step of its own removes: `deleteDir` in `dir(F)`, or an `sh` that only runs `rm -rf`."""
    if call.name == "deleteDir":
        dirs = call.enclosed_by("dir")
        return {str(model.resolve(dirs[-1]["args"][0], call.within)).strip("/")} if dirs else {"."}
    if call.name == "sh":
        lines = shell_lines(call.script)
        if lines and all(re.match(r"rm -(rf|fr) ", line) for line in lines):
            return {word for line in lines for word in line.split()[2:]}
    return set()


def stages_that_publish_without_starting_clean(model: Model) -> list[str]:
    """`hil run` does not clear its output folder, unstash adds to a workspace, and an agent reuses its
    workspace from build to build: a stage that publishes or gates results first removes their folder, in
    a step of its own (never in the shell that runs hil, where a failure before that shell starts would
    leave the old results in place), before anything writes into it, and outside the `try` whose `finally`
    publishes them (a clean that fails must not be followed by a publish)."""
    found = []
    for stage in model.stages:
        calls = model.in_stage(stage)
        publishers = [c for c in calls if c.name in PUBLISHERS]
        folders = {_folder(p) for c in publishers for p in c.text(PUBLISHERS[c.name]).split(",")}
        folders |= {m for c in calls if c.name == "sh" for m in re.findall(r"--results\s+(\S+)", c.script)}
        folders = {f.strip("\"'") for f in folders}
        where = f"{model.name}: stage {'/'.join(stage)!r}"
        for call in calls:
            lines = shell_lines(call.script) if call.name == "sh" else []
            if any(line.startswith(("rm ", "rm\t")) for line in lines) and not _cleans(model, call):
                found.append(f"{where}: the sh at line {call.line} removes files and runs other commands "
                             "too; clean in a step of its own")  # fmt: skip
        for folder in sorted(folders):
            cleans = [c for c in calls if folder in _cleans(model, c)]
            writers = [c for c in calls if c.name in ("sh", "unstash") and not _cleans(model, c)]
            if not cleans:
                found.append(f"{where} publishes {folder} without removing it first in a step of its own")
                continue
            first = cleans[0]
            early = [c for c in [*writers, *publishers] if c.order < first.order]
            if early:
                found.append(f"{where}: {early[0].name} at line {early[0].line} comes before {folder} is "
                             "removed")  # fmt: skip
            tries = {w["id"] for w in first.within if w["name"] == "try"}
            guarded = [c for c in publishers if {w["id"] for w in c.within if w["name"] == "finally"} & tries]
            if guarded:
                found.append(f"{where}: {folder} is removed inside the try whose finally publishes it "
                             f"({guarded[0].name} at line {guarded[0].line})")  # fmt: skip
    return found


def catches_that_swallow_aborts(model: Model) -> list[str]:
    """workflow-basic-steps CatchErrorStep: with catchInterruptions (default true) an abort or a timeout is
    caught, the build goes on and ends ABORTED; the pipelines catch failures only."""
    return [
        f"{model.name}:{call.line}: {call.name} without catchInterruptions: false"
        for call in model.steps("catchError", "warnError")
        if (call.arg("catchInterruptions") or {}).get("const") is not False
    ]


def waits_without_a_bound_of_their_own(model: Model) -> list[str]:
    """Every wait has a bound of its own, so that neither it nor what follows it is cut by another: a lock
    its timeoutForAllocateResource (or skipIfLocked), a `node` a watchdog beside it (a failFast parallel
    whose other branch is a timeout around waitUntil); a Declarative stage `agent` has none."""
    found = []
    for call in model.steps("lock", "node"):
        bounded = (
            model.lock_wait(call.node, call.within) if call.name == "lock" else model.node_wait(call.within)
        )
        if bounded == INF:
            what = "lock" if call.name == "lock" else "node"
            found.append(f"{model.name}:{call.line}: this {what} waits with no bound of its own")
    found += [
        f"{model.name}:{stage.agent['line']}: stage {'/'.join(path)!r} waits for its agent with no bound of "
        "its own"
        for path, stage in model.stages.items()
        if stage.agent is not None
    ]
    return found


def timeouts_around_a_wait(model: Model) -> list[str]:
    """workflow-basic-steps TimeoutStepExecution: a timeout bounds all it encloses, so one around a lock, a
    `node` or a stage agent also bounds the work after the wait: the longer the wait, the less time the
    work has, and a long wait for a rig cuts `hil run` short. The work's timeout belongs inside the lock
    and the node. (The build's own timeout is a backstop above every bound, and does not count.)"""
    found = []
    waits = [c for c in model.steps("lock", "node") if _waits(model, c)]
    for call in waits:
        around = [w for w in call.enclosed_by("timeout") if not model.is_build_option(w)]
        if around:
            line = around[-1]["line"]
            found.append(f"{model.name}:{call.line}: the timeout at line {line} bounds the wait of this "
                         f"{call.name} and the work inside it")  # fmt: skip
    for path, stage in model.stages.items():
        if stage.agent is not None and any(o["name"] == "timeout" for o in stage.options):
            found.append(f"{model.name}: stage {'/'.join(path)!r}: its timeout option bounds the wait for "
                         "its agent and its steps")  # fmt: skip
    return found


def stages_the_build_timeout_could_cut(model: Model) -> list[str]:
    """The stages' worst cases, waits included, add up to less than the build's timeout, so it never fires
    before a stage's own bound does: a stage that runs out of time fails on its own, and says why."""
    build = model.build_minutes()
    found, total = [], 0.0
    for top in model.top:
        bound, why = model.bound(top)
        if bound == INF:
            found.append(f"{model.name}: stage {'/'.join(top)!r} has no bound: {why}")
        total += bound
    if total < INF and total >= build:
        found.append(f"{model.name}: the stages may take {total:g} minutes, the build's timeout is {build:g}")
    return found


def _wait_minutes(model: Model, entry: dict, within: tuple[dict, ...]) -> float:
    if entry["name"] == "lock":
        return model.lock_wait(entry, within)
    if entry["name"] == "node":
        return model.node_wait(within)
    return INF if entry["name"] == "agent" else 0.0


def board_commands_without_a_bound_of_their_own(model: Model) -> list[str]:
    """A Jenkins timeout ends a step as an abort (a health check ABORTED, a run's JUnit unwritten); a hil
    command that drives a board runs under coreutils `timeout`, shorter than what the innermost Jenkins
    timeout around it leaves once the waits inside that timeout are over, so a hang is an ordinary failure
    the pipeline records."""
    found = []
    for call in model.steps("sh"):
        for line in shell_lines(call.script):
            bound = timeout_words(line)
            command = " ".join(bound[1]) if bound else line
            if not command.startswith(BOARD_COMMANDS):
                continue
            where = f"{model.name}:{call.line}"
            if bound is None:
                found.append(f"{where}: {command.split(' --')[0]} runs with no bound of its own")
                continue
            timeouts = [i for i, w in enumerate(call.within) if w["name"] == "timeout"]
            if not timeouts:
                continue
            inner = timeouts[-1]
            jenkins = model.minutes_of(call.within[inner], call.within[:inner])
            if model.is_build_option(call.within[inner]):
                jenkins = model.build_minutes()
            waits = sum(
                _wait_minutes(model, w, call.within[:i]) for i, w in enumerate(call.within) if i > inner
            )
            left = jenkins - waits if waits < INF else -INF
            if bound[0] >= left:
                waited = f", less the waits inside it ({waits:g} min)" if waits else ""
                found.append(f"{where}: its bound ({bound[0]:g} min) is not below the Jenkins timeout around "
                             f"it ({jenkins:g} min{waited})")  # fmt: skip
    return found


def stashes_of_more_than_the_gate_reads(model: Model) -> list[str]:
    """workflow-basic-steps: stash and unstash are for small files (a tarball through the controller);
    hand the gate its JUnit XML and Allure results, not the logs and transcripts."""
    return [
        f"{model.name}:{call.line}: stash includes {pattern.strip()!r}"
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
                found.append(f"{model.name}:{call.line}: hil run in a matrix cell keeps pytest's suite name")
    return found


def cells_that_can_throw_past_the_gate(model: Model) -> list[str]:
    """pipeline-model-definition: an exception that leaves a stage skips every later stage, the gate among
    them. In a matrix cell every step that can fail (taking a rig or an agent, checking out, running,
    publishing) runs inside a catchError that lets only an abort through."""
    found = []
    for call in model.calls:
        if not call.axes or call.section != "steps" or call.name not in {*BLOCKING, "lock", "node"}:
            continue
        caught = [
            w for w in call.enclosed_by("catchError", "warnError")
            if (w["named"].get("catchInterruptions") or {}).get("const") is False
        ]  # fmt: skip
        if not caught:
            found.append(f"{model.name}:{call.line}: {call.name} in a matrix cell can throw past the gate")
    return found


def shell_scripts_built_from_values(model: Model) -> list[str]:
    """A value pasted into a shell script is code to that shell (IMAGES pasted inside withCredentials ran
    with BALENA_API_KEY in scope): every `sh` script is a literal, and values reach it as environment
    variables."""
    return [
        f"{model.name}:{call.line}: sh script built from values ({call.script[:60]!r})"
        for call in model.steps("sh")
        if not (call.script_value or {}).get("literal")
    ]


def _unquoted_expansions(script: str) -> list[str]:
    """The `$` expansions of a POSIX shell script that stand outside quotes (here-document bodies, whose
    expansions are neither split nor globbed, do not count)."""
    found, quote, heredoc = [], "", None
    for raw in script.splitlines():
        if heredoc is not None:
            if raw.strip() == heredoc:
                heredoc = None
            continue
        line, i = raw, 0
        while i < len(line):
            ch = line[i]
            if quote == "'":
                quote = "" if ch == "'" else quote
            elif ch == "\\":
                i += 1
            elif quote == '"':
                quote = "" if ch == '"' else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "#" and (i == 0 or line[i - 1] in " \t;"):
                break
            elif ch == "$" and i + 1 < len(line) and re.match(r"[A-Za-z_{(@*#?0-9]", line[i + 1]):
                found.append(re.match(r"\$(\{[^}]*\}|\w+|.)", line[i:]).group(0))
            i += 1
        if not quote and (here := re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)):
            heredoc = here.group(1)
    return found


def unquoted_expansions_in_shell(model: Model) -> list[str]:
    """An unquoted `$VAR` is split on spaces and globbed: a suite named `*` expands to the workspace's
    files. Every expansion in a script stands inside double quotes (lists travel one item per line, read
    with `read -r`)."""
    return [
        f"{model.name}:{call.line}: unquoted {', '.join(dict.fromkeys(found))}"
        for call in model.steps("sh")
        if (found := _unquoted_expansions(call.script))
    ]


# Steps whose arguments name stashes, folders or file patterns, by argument ("" for the first positional).
PATH_ARGUMENTS = {
    "stash": ("name", "includes"), "unstash": ("",), "archiveArtifacts": ("artifacts",),
    "junit": ("testResults",), "allure": ("results",), "dir": ("",), "writeFile": ("file",),
    "readFile": ("",),
}  # fmt: skip


def _reads_params(value: dict | None) -> bool:
    return bool(value) and ("params" in value["vars"] or bool(value["params"]))


def paths_built_from_unchecked_parameters(model: Model) -> list[str]:
    """DEVICE_TYPES and IMAGES name stashes, folders and the globs of stash, archive, junit and Allure: a
    `../` or a `*` there reaches files outside the build. Those arguments are built from checked values
    (the matrix axis, the checked parameters), never from `params` directly or a loop over them."""
    found = []
    for call in model.steps(*PATH_ARGUMENTS):
        tainted = {
            name
            for w in call.within
            if w.get("object") is not None and _reads_params(w["object"])
            for name in w.get("closureParams") or []
        }
        for key in PATH_ARGUMENTS[call.name]:
            value = call.arg(key)
            if _reads_params(value) or (value and tainted & set(value["vars"])):
                found.append(f"{model.name}:{call.line}: {call.name} {key or 'argument'} built from "
                             f"parameters ({value['text'][:60]})")  # fmt: skip
    return found


# How a script hands the gate the file of missing cells' reasons, when the stage wrote one.
ADDS_MISSING_FROM = 'set -- "$@" --missing-from "$MISSING_FROM"'


def gates_not_told_why_a_cell_is_missing(model: Model) -> list[str]:
    """A cell that produced no results says why, in the file the gate stage writes (gate/missing.txt);
    every `hil release gate` reads it (`--missing-from`), so that the gate's summary and evidence say why,
    not only "no results". Its path reaches the script as MISSING_FROM (set by a withEnv around the `sh` to
    the file a writeFile of that stage writes, or to nothing), the script adds the option to "$@" when it is
    set, and every gate line passes "$@"."""
    found = []
    for call in model.steps("sh"):
        lines = shell_lines(call.script)
        gates = [line for line in lines if line.startswith("hil release gate")]
        if not gates:
            continue
        where = f"{model.name}:{call.line}"
        written = {c.text("file") for c in model.in_stage(call.stage) if c.name == "writeFile"} - {""}
        env = [v["text"] for w in call.enclosed_by("withEnv") for a in w["args"] for v in a.get("list", [])]
        if not any(e.startswith("MISSING_FROM=") and f in e for e in env for f in written):
            found.append(f"{where}: no withEnv around it sets MISSING_FROM to a file its stage writes")
        if not any(ADDS_MISSING_FROM in line for line in lines):
            found.append(f'{where}: the script never adds --missing-from "$MISSING_FROM" to "$@"')
        found += [f'{where}: {line.split(" --")[0]} ... does not pass "$@"' for line in gates
                  if not line.endswith('"$@"')]  # fmt: skip
    return list(dict.fromkeys(found))  # a function called on two paths runs its steps twice


# ---- the pipelines keep every rule

RULES = [
    options_read_what_the_build_has_not_set,
    locks_by_resource_name,
    locks_that_wait_holding_an_executor,
    allure_not_once_after_the_cells,
    allure_without_a_commandline,
    stages_that_publish_without_starting_clean,
    catches_that_swallow_aborts,
    waits_without_a_bound_of_their_own,
    timeouts_around_a_wait,
    stages_the_build_timeout_could_cut,
    board_commands_without_a_bound_of_their_own,
    stashes_of_more_than_the_gate_reads,
    cells_whose_junit_names_them_not,
    cells_that_can_throw_past_the_gate,
    shell_scripts_built_from_values,
    unquoted_expansions_in_shell,
    paths_built_from_unchecked_parameters,
    gates_not_told_why_a_cell_is_missing,
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
    # The parameters are checked against this list: it must be the axis.
    assert sorted(model.constants["DEVICE_TYPE_AXIS"]) == sorted(cells)


def test_a_cells_worst_case_counts_its_waits_and_fits_the_build() -> None:
    model = load(ROOT / "jenkins" / "Jenkinsfile")
    c = model.constants
    cell, _ = model.bound(("suites",))
    gate, _ = model.bound(("gate",))
    assert cell == c["RIG_WAIT"] + c["AGENT_WAIT"] + c["CELL_WORK"]
    assert gate == c["GATE_AGENT_WAIT"] + c["GATE_PREPARE"] + c["GATE_WORK"] + c["GATE_PUBLISH"]
    assert model.bound(("parameters",))[0] + cell + gate < model.build_minutes()


# ---- the pipelines before issue 14 broke them


def test_before_the_lock_label_read_the_matrix_axis_in_options_so_every_build_failed() -> None:
    assert options_read_what_the_build_has_not_set(before("Jenkinsfile")) == [
        "Jenkinsfile: stage 'suites/on a rig': options lock() reads DEVICE_TYPE, which the build has not set "
        "when options are evaluated"
    ]


def test_before_the_health_check_locked_by_name() -> None:
    assert locks_by_resource_name(before("Jenkinsfile")) == []
    assert "ephemeral" in " ".join(locks_by_resource_name(before("rig-health.Jenkinsfile")))


def test_before_the_health_check_took_the_agent_then_waited_for_the_rig() -> None:
    found = locks_that_wait_holding_an_executor(before("rig-health.Jenkinsfile"))
    assert [v.split(": ", 1)[1] for v in found] == ["a lock that waits, taken inside agent"]


def test_before_every_cell_ran_allure_and_a_missing_tool_skipped_the_stash() -> None:
    found = allure_not_once_after_the_cells(before("Jenkinsfile"))
    assert any("allure runs in every matrix cell" in v for v in found)
    assert any("archiveArtifacts follows allure" in v for v in found)


def test_before_neither_the_cells_nor_the_gate_cleared_old_results() -> None:
    found = stages_that_publish_without_starting_clean(before("Jenkinsfile"))
    assert {v.split(" publishes")[0] for v in found} == {
        "Jenkinsfile: stage 'suites/on a rig'",
        "Jenkinsfile: stage 'gate'",
    }


def test_before_catch_error_swallowed_aborts_in_both_pipelines() -> None:
    assert len(catches_that_swallow_aborts(before("Jenkinsfile"))) == 2
    assert len(catches_that_swallow_aborts(before("rig-health.Jenkinsfile"))) == 1


def test_before_the_wait_for_a_rig_was_bounded_only_by_the_builds_timeout() -> None:
    found = waits_without_a_bound_of_their_own(before("Jenkinsfile"))
    assert [v.split(": ", 1)[1] for v in found] == [
        "this lock waits with no bound of its own",
        "stage 'suites/on a rig' waits for its agent with no bound of its own",
        "stage 'gate' waits for its agent with no bound of its own",
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


# ---- the pipelines before issue 22 broke them


def before_22(name: str) -> Model:
    return load(BEFORE_22 / name)


def test_before_22_the_cells_timeout_bounded_the_wait_for_a_rig_and_hil_run_together() -> None:
    # Finding 1: `options { timeout(200) }` wrapped the lock, the node and the run.
    model = before_22("Jenkinsfile")
    assert [v.split(": ", 1)[1] for v in timeouts_around_a_wait(model)] == [
        "the timeout at line 122 bounds the wait of this lock and the work inside it",
        "the timeout at line 122 bounds the wait of this node and the work inside it",
        "stage 'gate': its timeout option bounds the wait for its agent and its steps",
    ]
    assert [v.split(": ", 1)[1] for v in waits_without_a_bound_of_their_own(model)] == [
        "this lock waits with no bound of its own",
        "this node waits with no bound of its own",
        "stage 'gate' waits for its agent with no bound of its own",
    ]


def test_before_22_the_150_minute_bound_was_held_against_200_minutes_that_counted_the_wait() -> None:
    # Finding 9: 152 < 200 said nothing once the wait for a rig came out of the same 200 minutes.
    found = board_commands_without_a_bound_of_their_own(before_22("Jenkinsfile"))
    assert [v.split(": ", 1)[1] for v in found] == [
        "its bound (152 min) is not below the Jenkins timeout around it (200 min, less the waits inside it "
        "(inf min))"
    ]
    # The same rule on the health job: 21 minutes against 100 that also waited for an executor.
    assert len(board_commands_without_a_bound_of_their_own(before_22("rig-health.Jenkinsfile"))) == 1


def test_before_22_a_label_lock_needed_resource_null_which_lock_step_ignores() -> None:
    # Finding 9: the rule demanded `resource: null`; it is gone, and a lock without it passes.
    model = load(ROOT / "jenkins" / "Jenkinsfile")
    assert locks_by_resource_name(model) == []
    assert all("resource" not in c.node["named"] for c in model.steps("lock"))


def test_before_22_the_imageargs_were_pasted_into_a_shell_with_the_api_key_in_scope() -> None:
    # Finding 3.
    found = shell_scripts_built_from_values(before_22("Jenkinsfile"))
    assert len(found) == 1 and "hil release gate" in found[0]


def test_before_22_suite_arguments_and_image_options_stood_unquoted() -> None:
    # Finding 8: $SUITE_ARGS was split and globbed.
    found = unquoted_expansions_in_shell(before_22("Jenkinsfile"))
    assert len(found) == 1 and "$SUITE_ARGS" in found[0] and "${IMAGE:+" in found[0]
    assert "${KNOWN_GOOD:+" in " ".join(unquoted_expansions_in_shell(before_22("rig-health.Jenkinsfile")))


def test_before_22_stash_names_and_allure_paths_came_from_the_parameters() -> None:
    # Finding 8: DEVICE_TYPES named the gate's unstash and the Allure paths.
    found = paths_built_from_unchecked_parameters(before_22("Jenkinsfile"))
    assert [v.split(": ", 1)[1].split(" built")[0] for v in found] == ["unstash argument", "allure results"]


def test_before_22_the_rm_ran_in_the_shell_that_runs_hil() -> None:
    # Finding 6: a failure before that shell started left the old results to be stashed.
    found = stages_that_publish_without_starting_clean(before_22("Jenkinsfile"))
    assert any("removes files and runs other commands too" in v for v in found)
    assert any("stage 'suites/on a rig' publishes results without removing it first" in v for v in found)


def test_before_22_a_cell_could_throw_past_the_gate() -> None:
    # Finding 4: the lock, the node and the checkout were outside the catchError.
    found = cells_that_can_throw_past_the_gate(before_22("Jenkinsfile"))
    assert {v.split(": ", 1)[1] for v in found} >= {
        "lock in a matrix cell can throw past the gate",
        "node in a matrix cell can throw past the gate",
        "checkout in a matrix cell can throw past the gate",
    }


def test_before_22_allure_named_no_installation() -> None:
    # Finding 7.
    assert len(allure_without_a_commandline(before_22("Jenkinsfile"))) == 1


def test_before_22_the_gate_heard_only_that_a_cell_had_no_results_not_why() -> None:
    # jenkins/AGENT.md, "How a missing cell's reason reaches the gate": the summary said "no results".
    found = gates_not_told_why_a_cell_is_missing(before_22("Jenkinsfile"))
    assert [v.split(": ", 1)[1] for v in found] == [
        "no withEnv around it sets MISSING_FROM to a file its stage writes",
        'the script never adds --missing-from "$MISSING_FROM" to "$@"',
        'hil release gate "$RELEASE" ... does not pass "$@"',
    ]


def test_before_22_the_health_job_checked_the_agents_own_rig_files_not_the_jobs() -> None:
    # Finding 5: no `checkout scm`, so `hil rig check` read whatever rigs/ the agent's workspace held.
    assert before_22("rig-health.Jenkinsfile").steps("checkout") == []
    health = load(ROOT / "jenkins" / "rig-health.Jenkinsfile")
    (checkout,) = health.steps("checkout")
    checks = [c for c in health.steps("sh") if "hil rig check" in c.script]
    assert checks and all(checkout.order < c.order for c in checks)
    assert checkout.enclosed_by("node") == checks[0].enclosed_by("node")


def test_before_22_the_health_job_held_a_rig_while_it_waited_for_the_agent() -> None:
    # Finding 5: lock, then node, with the executor busy: the lock was held until the stage's timeout.
    model = before_22("rig-health.Jenkinsfile")
    assert [v.split(": ", 1)[1] for v in waits_without_a_bound_of_their_own(model)] == [
        "this node waits with no bound of its own"
    ]
    assert [v.split(": ", 1)[1] for v in timeouts_around_a_wait(model)] == [
        "the timeout at line 20 bounds the wait of this node and the work inside it"
    ]


# ---- what Jenkins would run

IMAGES = "qemux86-64=/srv/images/a b.img\ngeneric-aarch64=/srv/images/balena.img.zip"
UNKNOWN = "pipeline { agent any\n stages { stage('x') { steps { sh 'hil run --rigg qemu-x86_64' } } } }\n"
MAIN, HEALTH = ROOT / "jenkins" / "Jenkinsfile", ROOT / "jenkins" / "rig-health.Jenkinsfile"
# The lab's shared store, as its Secret text credential holds it.
STORE_URL = "postgresql://hil@db.lab.invalid/hil"
STORE = {"HIL_STORE_CREDENTIAL": "hil-store-url"}
# name -> (Jenkinsfile, parameters); one JVM runs them all, in this order. None: UNKNOWN.
BUILDS = {
    "stale workspace": (MAIN, {"RELEASE": "7", "DEVICE_TYPES": "qemux86-64"}),
    "defaults": (MAIN, {"RELEASE": "7"}),
    "balena": (MAIN, {"RELEASE": "b2f4c1e", "BALENA": True, "IMAGES": IMAGES}),
    "health": (HEALTH, {"AGENT": "lab-1", "RIGS": "lab-rpi4-01", "KNOWN_GOOD": ""}),
    "health with an image": (HEALTH, {"AGENT": "lab-1", "RIGS": "lab-rpi4-01", "KNOWN_GOOD": "/srv/g.img"}),
    "shared store": (MAIN, {"RELEASE": "7"} | STORE),
    "shared store, balena": (MAIN, {"RELEASE": "b2f4c1e", "BALENA": True, "IMAGES": IMAGES} | STORE),
    "health, shared store": (HEALTH, {"AGENT": "lab-1", "RIGS": "lab-rpi4-01", "KNOWN_GOOD": ""} | STORE),
    "before": (BEFORE / "Jenkinsfile", {"RELEASE": "7"}),
    "unknown command": (None, {}),
}


@dataclass(frozen=True)
class Recorded:
    build: Build
    commands: list[dict]  # each hil command line: its arguments, the files under ./results then, the agent,
    # and the store and build tag in its environment


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
    line = {{"build": os.environ["BUILD_NUMBER"], "argv": sys.argv[1:], "results": files,
            "node": os.environ.get("NODE_NAME"), "store": os.environ.get("HIL_STORE"),
            "tag": os.environ.get("BUILD_TAG")}}
    out.write(json.dumps(line) + "\\n")
""")
    (bin_dir / "hil").chmod(0o755)
    (root / "scm").mkdir()
    (root / "unknown.Jenkinsfile").write_text(UNKNOWN)
    # `hil` labels the agents with hil installed that a shared store's gate may run on: not the gate agent.
    agents = [
        Agent("lab-qemu", ("qemu-x86_64", "qemu-arm64", "hil")),
        Agent("lab-1", ("lab-rpi4-01", "hil")),
        Agent("gate", ("hil-gate",)),
    ]
    resources = [
        Resource("qemu-x86_64#0", ("hil-qemux86-64", "qemu-x86_64#0")),
        Resource("qemu-arm64#0", ("hil-generic-aarch64", "qemu-arm64#0")),
        Resource("lab-rpi4-01", ("hil-raspberrypi4-64", "lab-rpi4-01")),
    ]
    jenkins = Jenkins(root / "home", agents=agents, resources=resources, scm=root / "scm", path=[bin_dir],
                      credentials={"hil-balena-api-key": "test-key", "hil-store-url": STORE_URL})  # fmt: skip
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


def _cli_knows(option: str, *command: str) -> bool:
    """Whether hil's parser has `option` for `command` (its --help lists it)."""
    parser = build_parser()
    for word in command:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return any(option in a.option_strings for a in parser._actions)


@pytest.mark.parametrize(
    "name",
    ["defaults", "balena", "health", "health with an image", "shared store", "shared store, balena",
     "health, shared store"],
)  # fmt: skip
def test_every_hil_command_a_build_runs_is_accepted_by_the_cli(
    recorded: dict[str, Recorded], name: str
) -> None:
    build, commands = recorded[name].build, recorded[name].commands
    assert commands, f"{name}: ran no hil command:\n{build.console[-3000:]}"
    assert build.result == "SUCCESS", build.console[-3000:]
    if name.startswith("shared store") and not _cli_knows("--build-tag", "release", "gate"):
        pytest.xfail("this hil's `release gate` has no --build-tag yet (the shared store's gate needs it)")
    assert _rejected(commands) == []


def test_a_command_the_cli_does_not_know_is_caught(recorded: dict[str, Recorded]) -> None:
    assert _rejected(recorded["unknown command"].commands) == ["hil run --rigg qemu-x86_64"]


def test_an_image_path_with_a_space_reaches_hil_as_one_argument(recorded: dict[str, Recorded]) -> None:
    commands = [c["argv"] for c in recorded["balena"].commands]
    runs, gate = [c for c in commands if c[:1] == ["run"]], commands[-1]
    images = sorted(r[r.index("--image") + 1] for r in runs)
    assert images == ["/srv/images/a b.img", "/srv/images/balena.img.zip"]
    assert gate[gate.index("--image") :] == [
        "--image", "generic-aarch64=/srv/images/balena.img.zip", "--image", "qemux86-64=/srv/images/a b.img",
        "--missing-from", "gate/missing.txt",
    ]  # fmt: skip


def test_without_a_shared_store_nothing_runs_with_its_url(recorded: dict[str, Recorded]) -> None:
    for name in ("defaults", "balena", "health"):
        assert all(c["store"] != STORE_URL for c in recorded[name].commands), name


@pytest.mark.parametrize("name", ["shared store", "shared store, balena"])
def test_with_a_shared_store_the_cells_record_into_it_and_the_gate_judges_the_builds_runs(
    recorded: dict[str, Recorded], name: str
) -> None:
    build, commands = recorded[name].build, recorded[name].commands
    (tag,) = {c["tag"] for c in commands}
    assert tag.startswith("jenkins-hil-")  # BUILD_TAG, as Jenkins sets it in every step
    runs = [c for c in commands if c["argv"][:1] == ["run"]]
    (gate,) = [c for c in commands if c["argv"][:2] == ["release", "gate"]]
    assert len(runs) == 2 and all(c["store"] == STORE_URL for c in [*runs, gate])
    # The gate reads no files: the runs with this build's tag, in the store, on any agent with hil.
    argv = gate["argv"]
    assert argv[argv.index("--build-tag") :][:2] == ["--build-tag", tag] and "--results" not in argv
    assert gate["node"] != "gate" and gate["results"] == []
    if name.endswith("balena"):
        assert argv[argv.index("--balena") :] == [
            "--balena", "--image", "generic-aarch64=/srv/images/balena.img.zip",
            "--image", "qemux86-64=/srv/images/a b.img", "--missing-from", "gate/missing.txt",
        ]  # fmt: skip
    # The recording hil writes no results: nothing is stashed, and the URL is in no script or log.
    assert build.stashes() == [] and STORE_URL not in build.console


@pytest.mark.parametrize("name", ["defaults", "balena", "shared store", "shared store, balena"])
def test_the_gate_reads_why_each_cell_produced_no_results(recorded: dict[str, Recorded], name: str) -> None:
    # The recording hil writes no results: every cell is missing, and the gate reads why from the file the
    # gate stage wrote, which hil's own reader takes as it is.
    (gate,) = [c["argv"] for c in recorded[name].commands if c["argv"][:2] == ["release", "gate"]]
    assert gate[-2:] == ["--missing-from", "gate/missing.txt"]
    types = ("generic-aarch64", "qemux86-64")
    missing = read_missing(recorded[name].build.archive / "gate" / "missing.txt", types)
    assert missing == {dt: f"hil run on rig {rig} wrote no results/{dt}/junit.xml"
                       for dt, rig in zip(types, ("qemu-arm64#0", "qemu-x86_64#0"), strict=True)}  # fmt: skip


def test_the_health_job_checks_with_the_shared_store(recorded: dict[str, Recorded]) -> None:
    (check,) = [c for c in recorded["health, shared store"].commands if c["argv"][:2] == ["rig", "check"]]
    assert check["store"] == STORE_URL


def test_a_reused_workspace_lends_the_gate_no_earlier_results(recorded: dict[str, Recorded]) -> None:
    stale = recorded["stale workspace"]
    gate = [c for c in stale.commands if c["argv"][:2] == ["release", "gate"]]
    assert [c["results"] for c in gate] == [[]]
    # The recording hil writes no results: nothing to stash, and the stale JUnit was not taken for some.
    assert "results-qemux86-64" not in stale.build.stashes()


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
