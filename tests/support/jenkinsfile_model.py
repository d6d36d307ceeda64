"""A Jenkinsfile's steps as Declarative Pipeline runs them, from its Groovy syntax tree (no Jenkins).

tests/support/jenkinsfile_steps.groovy gives the tree; this module walks it in the plugin's evaluation order
(pipeline-model-definition ModelInterpreter): a stage's option wrappers (lock, timeout) enclose its agent,
which encloses its `when`, `environment`, `steps` and `post`. Each step call comes out with the stage it
runs in, the matrix axes of that stage, and what encloses it when it runs (wrappers, the agent, block
steps such as lock, node, timeout, catchError, the branches of a `parallel`, the parts of a try), through
the script's own functions and the closures they are handed.

It also says how long a stage can take at worst (`Model.bound`), waits included: a `timeout` bounds all it
encloses; a lock waits its `timeoutForAllocateResource` (nothing if skipIfLocked, for ever without either);
a `node` waits as long as the watchdog branch beside it in a failFast `parallel` allows, else for ever; a
Declarative stage `agent` for ever; a step that does real work (sh, checkout, stash...) outside any
timeout for ever; a loop over steps for ever unless a timeout encloses it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STEPS = Path(__file__).with_name("jenkinsfile_steps.groovy")
# Option names that are block steps: Declarative wraps the stage in them, in the order written.
WRAPPERS = {"lock", "timeout", "retry", "timestamps", "withCredentials", "ansiColor"}
MINUTES = {"SECONDS": 1 / 60, "MINUTES": 1, "HOURS": 60, "DAYS": 24 * 60}
# Steps that do real work on an agent, or wait: bounded only by a `timeout` around them.
BLOCKING = {
    "sh", "checkout", "stash", "unstash", "archiveArtifacts", "junit", "allure", "publishHTML", "deleteDir",
    "waitUntil", "sleep", "input", "build",
}  # fmt: skip
INF = math.inf


@dataclass(frozen=True)
class Call:
    """One step call, where it runs."""

    node: dict
    stage: tuple[str, ...]
    axes: dict[str, list[str]]
    within: tuple[dict, ...]  # what encloses it at run time, outermost first
    section: str  # options | when | environment | agent | steps | post.<condition>
    order: int

    @property
    def name(self) -> str:
        return self.node["name"]

    @property
    def line(self) -> int:
        return self.node["line"]

    def arg(self, key: str) -> dict | None:
        """A named argument's value; with key "", the first positional one."""
        if key:
            return self.node["named"].get(key)
        return self.node["args"][0] if self.node["args"] else None

    def text(self, key: str = "") -> str:
        value = self.arg(key)
        return value["text"] if value else ""

    def const(self, key: str) -> object:
        """A named argument's literal value, else None."""
        value = self.arg(key)
        return value.get("const") if value else None

    @property
    def script(self) -> str:
        """An `sh` step's script, as written (a GString keeps its `${...}`)."""
        return self.text("script") or self.text("")

    @property
    def script_value(self) -> dict | None:
        return self.arg("script") or self.arg("")

    def enclosed_by(self, *names: str) -> list[dict]:
        return [w for w in self.within if w["name"] in names]


@dataclass(frozen=True)
class Stage:
    path: tuple[str, ...]
    axes: dict[str, list[str]]
    options: tuple[dict, ...]
    agent: dict | None  # the agent call, None when there is none or it is `agent none`
    children: tuple[tuple[str, ...], ...]  # nested stages
    concurrent: bool  # children run at once (matrix, parallel), else one after another
    sections: dict = field(default_factory=dict)  # the stage's raw sections (steps, post), by name


@dataclass
class Model:
    """A parsed Jenkinsfile: its stages and every step call in the order it runs."""

    path: Path
    stages: dict[tuple[str, ...], Stage] = field(default_factory=dict)
    top: list[tuple[str, ...]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    options: list[dict] = field(default_factory=list)
    params: dict[str, object] = field(default_factory=dict)
    script_vars: set[str] = field(default_factory=set)
    constants: dict[str, object] = field(default_factory=dict)  # top-level variables set to literals
    functions: dict[str, dict] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def steps(self, *names: str) -> list[Call]:
        return [c for c in self.calls if c.name in names]

    def in_stage(self, path: tuple[str, ...]) -> list[Call]:
        return [c for c in self.calls if c.stage == path]

    def build_minutes(self) -> float:
        """The pipeline's own timeout, in minutes (infinite without one)."""
        return min((minutes(o) for o in self.options if o["name"] == "timeout"), default=INF)

    def is_build_option(self, wrapper: dict) -> bool:
        return any(wrapper is o for o in self.options)

    # ---- values

    def resolve(self, value: dict | None, within: tuple[dict, ...] = ()) -> object:
        """A value as the script would have it: a literal, a function's parameter bound to one where the
        function is called, or a top-level variable set to one; None when it depends on the run."""
        if value is None:
            return None
        if value.get("literal"):
            return value["const"]
        if "list" in value:
            items = [self.resolve(v, within) for v in value["list"]]
            return None if None in items else items
        name = value["text"]
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            return None
        for i in range(len(within) - 1, -1, -1):
            binding = within[i].get("binding") or {}
            if name in binding:
                bound = binding[name]
                return None if "closure" in bound else self.resolve(bound, within[:i])
        return self.constants.get(name)

    def minutes_of(self, timeout: dict, within: tuple[dict, ...] = ()) -> float:
        """A timeout's duration in minutes (infinite when it cannot be told)."""
        named = timeout["named"]
        time = self.resolve(named.get("time") or (timeout["args"][0] if timeout["args"] else None), within)
        unit = self.resolve(named.get("unit"), within) or "MINUTES"
        return float(time) * MINUTES[str(unit)] if isinstance(time, int | float) else INF

    def lock_wait(self, lock: dict, within: tuple[dict, ...] = ()) -> float:
        """How long a lock can wait, in minutes: nothing with skipIfLocked, its timeoutForAllocateResource,
        else for ever."""
        named = lock["named"]
        if self.resolve(named.get("skipIfLocked"), within) is True:
            return 0.0
        allocate = self.resolve(named.get("timeoutForAllocateResource"), within)
        if not isinstance(allocate, int | float) or allocate <= 0:
            return INF
        unit = self.resolve(named.get("timeoutUnit"), within) or "MINUTES"
        return float(allocate) * MINUTES[str(unit)]

    def node_wait(self, within: tuple[dict, ...]) -> float:
        """How long a `node` whose enclosing entries are `within` can wait for its agent: as long as the
        watchdog beside it allows (a branch of the same failFast parallel whose timeout encloses a
        waitUntil), else for ever."""
        for i in range(len(within) - 1, -1, -1):
            entry = within[i]
            if entry["name"] != "branch":
                continue
            parallel = entry["parallel"]
            if self.resolve(parallel["named"].get("failFast"), within[:i]) is not True:
                return INF
            for key, value in parallel["named"].items():
                if key == entry["branch"] or "closure" not in value:
                    continue
                watchdog = _watchdog_timeout(value["closure"])
                if watchdog is not None:
                    return self.minutes_of(watchdog, within[:i])
            return INF
        return INF

    # ---- how long a stage can take

    def bound(self, path: tuple[str, ...]) -> tuple[float, str]:
        """How long a stage can take at worst, in minutes, and what makes it unbounded (or "")."""
        stage = self.stages[path]
        own = [minutes(o) for o in stage.options if o["name"] == "timeout"]
        if own:
            return min(own), ""
        where = f"stage {'/'.join(path)!r}"
        total, why = 0.0, ""
        if stage.agent is not None:
            total, why = INF, f"{self.name}:{stage.agent['line']}: {where} waits for its agent with no bound"
        if stage.children:
            parts = [self.bound(c) for c in stage.children]
            worst = max if stage.concurrent else sum
            total += worst(p[0] for p in parts)
            why = why or next((w for b, w in parts if b == INF), "")
        for name in ("steps", *[k for k in stage.sections if k.startswith("post.")]):
            if name in stage.sections:
                minutes_, reason = _Bounder(self).nodes(stage.sections[name], ())
                total += minutes_
                why = why or reason
        return total, why


def minutes(timeout: dict) -> float:
    """A timeout call's duration in minutes, when it is a literal."""
    named = timeout["named"]
    unit = named.get("unit", {}).get("const", "MINUTES")
    time = named["time"]["const"] if "time" in named else timeout["args"][0]["const"]
    return float(time) * MINUTES[unit]


def _watchdog_timeout(nodes: list) -> dict | None:
    """The `timeout` call in a branch that encloses a `waitUntil`, if the branch is such a watchdog."""
    for node in nodes:
        if node["type"] == "try":
            found = _watchdog_timeout(node["body"])
            if found is not None:
                return found
        elif (
            node["type"] == "call"
            and node["name"] == "timeout"
            and any(n["type"] == "call" and n["name"] == "waitUntil" for n in node["body"] or [])
        ):
            return node
    return None


class _Bounder:
    """The worst-case minutes of a piece of script, and the first thing that makes it unbounded."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def nodes(self, nodes: list, within: tuple, node_wait: float = INF) -> tuple[float, str]:
        total, why = 0.0, ""
        for node in nodes:
            minutes_, reason = self.node(node, within, node_wait)
            total += minutes_
            why = why or reason
        return total, why

    def node(self, node: dict, within: tuple, node_wait: float) -> tuple[float, str]:
        kind = node["type"]
        if kind == "call":
            return self.call(node, within, node_wait)
        if kind in ("assign", "expr", "return"):
            return self.nodes(node.get("calls") or [], within, node_wait)
        if kind == "if":
            cond = self.nodes(node.get("calls") or [], within, node_wait)
            then, other = (
                self.nodes(node["then"], within, node_wait),
                self.nodes(node["else"], within, node_wait),
            )
            worst = max(then, other, key=lambda p: p[0])
            return cond[0] + worst[0], cond[1] or then[1] or other[1]
        if kind == "try":
            parts = [self.nodes(node[p], within, node_wait) for p in ("body", "catches", "finally")]
            return sum(p[0] for p in parts), next((p[1] for p in parts if p[1]), "")
        if kind == "for":
            inner = self.nodes(node["body"], within, node_wait)
            return (INF, inner[1] or f"{self.model.name}: a loop of steps") if inner[0] else (0.0, "")
        return 0.0, ""

    def call(self, node: dict, within: tuple, node_wait: float) -> tuple[float, str]:
        model, name = self.model, node["name"]
        where = f"{model.name}:{node['line']}"
        here = (*within, node)
        if node["object"] is not None:  # a Groovy method: a loop when it takes a closure
            if not node["body"]:
                return 0.0, ""
            inner = self.nodes(node["body"], here, node_wait)
            return (INF, inner[1] or f"{where}: {name} loops over steps") if inner[0] else (0.0, "")
        if name == "timeout":
            return model.minutes_of(node, within), ""
        if name in model.functions:
            function = model.functions[name]
            binding = dict(zip(function["params"], node["args"], strict=False))
            if node["body"] is not None and len(function["params"]) == len(node["args"]) + 1:
                binding[function["params"][-1]] = {"closure": node["body"], "within": within}
            return self.nodes(function["body"], (*within, {**node, "binding": binding}), node_wait)
        bound = _bound_closure(name, within)
        if bound is not None:
            return self.nodes(bound["closure"], bound["within"], node_wait)
        if name == "parallel":
            branches = {k: v["closure"] for k, v in node["named"].items() if "closure" in v}
            watchdog = model.node_wait((*within, {"name": "branch", "branch": "", "parallel": node}))
            parts = [self.nodes(b, here, watchdog) for b in branches.values()]
            return max((p[0] for p in parts), default=0.0), next((p[1] for p in parts if p[1]), "")
        own, why = 0.0, ""
        if name == "lock":
            own = model.lock_wait(node, within)
            why = f"{where}: lock waits with no bound of its own" if own == INF else ""
        elif name == "node":
            own = node_wait
            why = f"{where}: node waits for its agent with no bound of its own" if own == INF else ""
        elif name in BLOCKING:
            return INF, f"{where}: {name} runs outside any timeout"
        inner = self.nodes(node["body"] or [], here, INF)
        return own + inner[0], why or inner[1]


def _bound_closure(name: str, within: tuple) -> dict | None:
    """The closure a function's parameter `name` holds where the function is called, if it holds one."""
    for entry in reversed(within):
        bound = (entry.get("binding") or {}).get(name)
        if bound is not None:
            return bound if "closure" in bound else None
    return None


def parse(*paths: Path) -> dict[Path, dict]:
    """The Groovy syntax trees of Jenkinsfiles, as jenkinsfile_steps.groovy prints them (one JVM)."""
    if shutil.which("groovy") is None:
        pytest.skip("groovy is not installed (apt-get install groovy default-jre-headless)")
    command = ["groovy", str(STEPS), *map(str, paths)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    names = ", ".join(p.name for p in paths)
    assert out.returncode == 0, f"{names} does not parse as Groovy:\n{out.stderr}"
    return {Path(p): tree for p, tree in json.loads(out.stdout).items()}


_MODELS: dict[Path, Model] = {}


def load(path: Path, *more: Path) -> Model:
    """The model of a Jenkinsfile, parsed once per test session; `more` are parsed in the same go."""
    missing = [p for p in (path, *more) if p not in _MODELS]
    if missing:
        _MODELS.update({p: _model(p, tree) for p, tree in parse(*missing).items()})
    return _MODELS[path]


def _model(path: Path, tree: dict) -> Model:
    model = Model(path=path)
    model.functions = tree["functions"]
    assigns = [n for n in tree["script"] if n["type"] == "assign"]
    model.script_vars = {n["name"] for n in assigns}
    for node in assigns:
        value = model.resolve(node["value"])
        if value is not None:
            model.constants[node["name"]] = value
    pipelines = [n for n in tree["script"] if n["type"] == "call" and n["name"] == "pipeline"]
    assert len(pipelines) == 1, f"{path.name}: expected one pipeline {{ }} block"
    _Walker(model, model.functions).pipeline(pipelines[0])
    return model


class _Walker:
    def __init__(self, model: Model, functions: dict) -> None:
        self.model = model
        self.functions = functions

    def record(self, node: dict, stage: tuple[str, ...], axes: dict, within: tuple, section: str) -> None:
        order = len(self.model.calls)
        self.model.calls.append(Call(node, stage, axes, within, section, order))

    def pipeline(self, node: dict) -> None:
        sections = {n["name"]: n for n in _calls(node["body"])}
        options = _calls(sections["options"]["body"]) if "options" in sections else []
        self.model.options = options
        for option in options:
            self.record(option, (), {}, (), "options")
        for param in _calls(sections.get("parameters", {}).get("body") or []):
            self.model.params[param["named"]["name"]["const"]] = (
                param["named"].get("defaultValue", {}).get("const")
            )
        within = tuple(o for o in options if o["name"] in WRAPPERS)
        self.model.top = self.stages(sections["stages"]["body"], (), {}, within)

    def stages(self, nodes: list, parent: tuple, axes: dict, within: tuple) -> list[tuple[str, ...]]:
        return [self.stage(n, parent, axes, within) for n in _calls(nodes) if n["name"] == "stage"]

    def stage(self, node: dict, parent: tuple, axes: dict, within: tuple) -> tuple[str, ...]:
        path = (*parent, node["args"][0]["const"])
        sections = {n["name"]: n for n in _calls(node["body"])}
        options = _calls(sections["options"]["body"]) if "options" in sections else []
        for i, option in enumerate(options):
            self.record(
                option, path, axes, within + tuple(o for o in options[:i] if o["name"] in WRAPPERS), "options"
            )
        inner = within + tuple(o for o in options if o["name"] in WRAPPERS)
        agent = sections.get("agent")
        if agent is not None and agent["args"] and agent["args"][0]["text"] == "none":
            agent = None
        if agent is not None:
            inner += (
                {"name": "agent", "line": agent["line"], "named": {}, "args": agent["args"], "body": None},
            )
        for name in ("when", "environment"):
            if name in sections:
                self.body(sections[name]["body"], path, axes, inner, name)
        children: list[tuple[str, ...]] = []
        concurrent = False
        if "matrix" in sections:
            matrix = {n["name"]: n for n in _calls(sections["matrix"]["body"])}
            cell_axes = dict(axes)
            for axis in _calls(matrix["axes"]["body"]):
                parts = {n["name"]: n for n in _calls(axis["body"])}
                cell_axes[parts["name"]["args"][0]["const"]] = [v["const"] for v in parts["values"]["args"]]
            children = self.stages(matrix["stages"]["body"], path, cell_axes, inner)
            concurrent = True
        for name in ("stages", "parallel"):
            if name in sections:
                children = self.stages(sections[name]["body"], path, axes, inner)
                concurrent = name == "parallel"
        raw: dict[str, list] = {}
        if "steps" in sections:
            raw["steps"] = sections["steps"]["body"]
            self.body(sections["steps"]["body"], path, axes, inner, "steps")
        for condition in _calls(sections.get("post", {}).get("body") or []):
            raw[f"post.{condition['name']}"] = condition["body"]
            self.body(condition["body"], path, axes, inner, f"post.{condition['name']}")
        self.model.stages[path] = Stage(path, axes, tuple(options), agent, tuple(children), concurrent, raw)
        return path

    def body(
        self,
        nodes: list,
        stage: tuple,
        axes: dict,
        within: tuple,
        section: str,
        seen: frozenset = frozenset(),
    ) -> None:
        for node in nodes:
            kind = node["type"]
            if kind == "call":
                self.call(node, stage, axes, within, section, seen)
            elif kind in ("assign", "expr", "return"):
                self.body(node.get("calls") or [], stage, axes, within, section, seen)
            elif kind == "try":
                marker = {"name": "try", "id": id(node), "line": 0, "named": {}, "args": [], "body": None}
                self.body(node["body"], stage, axes, (*within, marker), section, seen)
                self.body(node["catches"], stage, axes, (*within, {**marker, "name": "catch"}), section, seen)
                self.body(
                    node["finally"], stage, axes, (*within, {**marker, "name": "finally"}), section, seen
                )
            elif kind == "if":
                self.body(node.get("calls") or [], stage, axes, within, section, seen)
                for part in ("then", "else"):
                    self.body(node[part], stage, axes, within, section, seen)
            elif kind == "for":
                self.body(node["body"], stage, axes, within, section, seen)

    def call(
        self, node: dict, stage: tuple, axes: dict, within: tuple, section: str, seen: frozenset
    ) -> None:
        self.record(node, stage, axes, within, section)
        name = node["name"]
        if node["object"] is None and name in self.functions and name not in seen:
            function = self.functions[name]
            binding = dict(zip(function["params"], node["args"], strict=False))
            if node["body"] is not None and len(function["params"]) == len(node["args"]) + 1:
                # The closure it is handed runs where the function calls it.
                binding[function["params"][-1]] = {"closure": node["body"], "within": within}
                self.body(function["body"], stage, axes, (*within, {**node, "binding": binding}), section,
                          seen | {name})  # fmt: skip
                return
            self.body(
                function["body"], stage, axes, (*within, {**node, "binding": binding}), section, seen | {name}
            )
        bound = _bound_closure(name, within) if node["object"] is None else None
        if bound is not None:
            self.body(bound["closure"], stage, axes, (*within, node), section, seen)
            return
        for key, value in node["named"].items():
            if "closure" in value:  # a parallel's branches
                branch = {"name": "branch", "branch": key, "parallel": node, "line": node["line"],
                          "named": {}, "args": [], "body": None}  # fmt: skip
                self.body(value["closure"], stage, axes, (*within, node, branch), section, seen)
        if node["body"]:
            self.body(node["body"], stage, axes, (*within, node), section, seen)


def _calls(nodes: list) -> list[dict]:
    return [n for n in nodes if n["type"] == "call"]


def shell_lines(script: str) -> list[str]:
    """A script's command lines, stripped, without blanks and comments."""
    return [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]


def timeout_words(line: str) -> tuple[float, list[str]] | None:
    """For a line run under coreutils `timeout`: its total bound in minutes (duration + kill grace) and
    the command it bounds; None for any other line."""
    words = line.split()
    if words[:1] != ["timeout"]:
        return None
    words, kill = words[1:], 0.0
    while words and words[0].startswith("-"):
        option = words.pop(0)
        if option.startswith(("--kill-after=", "-k")):
            kill = _duration(option.split("=", 1)[-1] if "=" in option else words.pop(0))
    return _duration(words[0]) + kill, words[1:]


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text)
    assert match, f"not a coreutils duration: {text!r}"
    return float(match.group(1)) * {"": 1 / 60, "s": 1 / 60, "m": 1, "h": 60, "d": 24 * 60}[match.group(2)]
