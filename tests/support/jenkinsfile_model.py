"""A Jenkinsfile's steps as Declarative Pipeline runs them, from its Groovy syntax tree (no Jenkins).

tests/support/jenkinsfile_steps.groovy gives the tree; this module walks it in the plugin's evaluation order
(pipeline-model-definition ModelInterpreter): a stage's option wrappers (lock, timeout) enclose its agent,
which encloses its `when`, `environment`, `steps` and `post`. Each step call comes out with the stage it
runs in, the matrix axes of that stage, and what encloses it when it runs (wrappers, the agent, block
steps such as lock, node, timeout, catchError), through the script's own functions.
"""

from __future__ import annotations

import json
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

    def arg(self, key: str) -> dict | None:
        """A named argument's value; with key "", the first positional one."""
        if key:
            return self.node["named"].get(key)
        return self.node["args"][0] if self.node["args"] else None

    def text(self, key: str = "") -> str:
        value = self.arg(key)
        return value["text"] if value else ""

    @property
    def script(self) -> str:
        """An `sh` step's script, as written (a GString keeps its `${...}`)."""
        return self.text("script") or self.text("")

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

    @property
    def name(self) -> str:
        return self.path.name

    def steps(self, *names: str) -> list[Call]:
        return [c for c in self.calls if c.name in names]

    def in_stage(self, path: tuple[str, ...]) -> list[Call]:
        return [c for c in self.calls if c.stage == path]

    def build_minutes(self) -> float:
        """The pipeline's own timeout, in minutes (infinite without one)."""
        return min((minutes(o) for o in self.options if o["name"] == "timeout"), default=float("inf"))

    def bound(self, path: tuple[str, ...]) -> float:
        """How long a stage can take, in minutes: its own timeout, else what its children's allow."""
        stage = self.stages[path]
        own = [minutes(o) for o in stage.options if o["name"] == "timeout"]
        if own:
            return min(own)
        if not stage.children:
            return float("inf")
        bounds = [self.bound(c) for c in stage.children]
        return max(bounds) if stage.concurrent else sum(bounds)


def minutes(timeout: dict) -> float:
    """A timeout call's duration in minutes."""
    named = timeout["named"]
    unit = named.get("unit", {}).get("const", "MINUTES")
    return float(named["time"]["const"]) * MINUTES[unit]


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
    functions = tree["functions"]
    model.script_vars = {n["name"] for n in tree["script"] if n["type"] == "assign"}
    pipelines = [n for n in tree["script"] if n["type"] == "call" and n["name"] == "pipeline"]
    assert len(pipelines) == 1, f"{path.name}: expected one pipeline {{ }} block"
    _Walker(model, functions).pipeline(pipelines[0])
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
        if "steps" in sections:
            self.body(sections["steps"]["body"], path, axes, inner, "steps")
        for condition in _calls(sections.get("post", {}).get("body") or []):
            self.body(condition["body"], path, axes, inner, f"post.{condition['name']}")
        self.model.stages[path] = Stage(path, axes, tuple(options), agent, tuple(children), concurrent)
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
            if node["type"] == "call":
                self.record(node, stage, axes, within, section)
                name = node["name"]
                if node["object"] is None and name in self.functions and name not in seen:
                    self.body(
                        self.functions[name]["body"], stage, axes, (*within, node), section, seen | {name}
                    )
                if node["body"]:
                    self.body(node["body"], stage, axes, (*within, node), section, seen)
            elif node["type"] == "try":
                for part in ("body", "catches", "finally"):
                    self.body(node[part], stage, axes, within, section, seen)
            elif node["type"] == "if":
                for part in ("then", "else"):
                    self.body(node[part], stage, axes, within, section, seen)
            elif node["type"] == "for":
                self.body(node["body"], stage, axes, within, section, seen)


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
