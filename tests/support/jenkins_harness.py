"""A Jenkins without Jenkins: run a Jenkinsfile's stages on this machine, on fresh workspaces, as Jenkins
would (tests/support/jenkins_runner.groovy does the running), and read back what happened.

A test describes the lab: agents (name, labels, environment, online or not), Lockable Resources (name,
labels, and whether a build outside holds them all along), the project checked out by `checkout scm`,
credentials, the Allure Commandline installations, and what goes first on the PATH. The runner writes one
JSON event per step; `Build` answers questions about them. Whatever `sh` runs is real: with the venv's
`hil` first on the PATH, a build drives real rigs and a real release store. A `Jenkins` keeps its
resources' labels and notes from build to build, as `updateLock` leaves them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("jenkins_runner.groovy")


@dataclass(frozen=True)
class Agent:
    """A Jenkins agent: where `node(label)` and `agent { label ... }` land. An offline agent never comes
    back during a build: a `node` waiting for it waits until something else ends the wait."""

    name: str
    labels: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    online: bool = True
    busy: bool = False  # every executor taken by builds outside this one, for longer than it could wait


@dataclass(frozen=True)
class Resource:
    """A Lockable Resource as the Jenkins admin declared it. `busy`: a build outside this one holds it for
    longer than this build could wait; `free_after`: it holds it until so many minutes into this build."""

    name: str
    labels: tuple[str, ...]
    busy: bool = False
    note: str = ""
    free_after: float = 0.0


@dataclass(frozen=True)
class Build:
    """One build's outcome: its result, its events in order, its console, its archived artifacts."""

    result: str
    events: list[dict]
    console: str
    archive: Path
    description: str | None = None

    def of(self, kind: str) -> list[dict]:
        """The events of one kind (`sh`, `lock`, `node`, `stash`, `stage`, ...), in order."""
        return [e for e in self.events if e["event"] == kind]

    def stage(self, *path: str) -> str:
        """The final status of the stage at `path` (SUCCESS, FAILURE, SKIPPED, ...)."""
        ends = [e["status"] for e in self.of("stage") if tuple(e["path"]) == path and e["status"] != "START"]
        assert ends, f"stage {' / '.join(path)} never ran; stages: {[e['path'] for e in self.of('stage')]}"
        return ends[-1]

    def commands(self, prefix: str) -> list[dict]:
        """The `sh` events whose script runs a command line starting with `prefix`."""
        return [
            e
            for e in self.of("sh")
            if any(_command(line).startswith(prefix) for line in e["script"].splitlines())
        ]

    def stash(self, name: str) -> list[str]:
        """The files a stash holds."""
        (stash,) = [e for e in self.of("stash") if e["name"] == name]
        return stash["files"]

    def stashes(self) -> list[str]:
        """The names of the stashes the build made."""
        return [e["name"] for e in self.of("stash")]

    def resources(self) -> list[Resource]:
        """The Lockable Resources as the build left them."""
        (last,) = self.of("resources")[-1:]
        return [_resource(r) for r in last["resources"]]

    def labels(self, resource: str) -> tuple[str, ...]:
        """A resource's labels as the build left them."""
        (found,) = [r for r in self.resources() if r.name == resource]
        return found.labels


def _command(line: str) -> str:
    """A shell line's command, past a coreutils `timeout` and its options."""
    words = line.split()
    if words[:1] == ["timeout"]:
        words = words[1:]
        while words and words[0].startswith("-"):
            words = words[1:]
        words = words[1:]  # the duration
    return " ".join(words)


class Jenkins:
    """A Jenkins home: agents' workspaces, stashes and archives persist across its builds, as they do."""

    def __init__(
        self,
        home: Path,
        *,
        agents: list[Agent],
        resources: list[Resource],
        scm: Path | None = None,
        credentials: dict[str, str] | None = None,
        path: list[Path] | None = None,
        tools: tuple[str, ...] = ("allure",),
        scm_broken_on: tuple[str, ...] = (),
    ) -> None:
        self.home = home
        self.agents = agents
        self.resources = resources
        self.scm = scm
        self.credentials = credentials or {}
        self.path = path or []
        self.tools = tools  # the Allure Commandline installations, by name
        self.scm_broken_on = scm_broken_on  # agents where `checkout scm` fails
        self.builds = 0

    def workspace(self, agent: str, job: str = "hil") -> Path:
        """The workspace `agent` gives builds of `job`."""
        return self.home / "agents" / agent / "workspace" / job

    def run(
        self,
        jenkinsfile: Path,
        params: dict[str, object],
        *,
        timeout: float = 1800,
        abort_sh: str | None = None,
    ) -> Build:
        """Run one build of `jenkinsfile` with `params`; the build's result is in the answer, not raised.
        `abort_sh`: a regular expression; the build is aborted while an `sh` whose script matches it runs."""
        return self.run_many([(jenkinsfile, params)], timeout=timeout, abort_sh=abort_sh)[0]

    def run_many(
        self,
        builds: list[tuple[Path, dict[str, object]]],
        *,
        timeout: float = 1800,
        abort_sh: str | None = None,
    ) -> list[Build]:
        """Run builds one after another, in one JVM (a JVM takes seconds to start)."""
        return run_together([Run(self, path, params, abort_sh) for path, params in builds], timeout=timeout)

    def _prepare(self, run: Run) -> tuple[dict, Path]:
        self.builds += 1
        build_dir = self.home / "builds" / str(self.builds)
        build_dir.mkdir(parents=True)
        config = self._config(run.jenkinsfile, run.params, self.builds, build_dir)
        return config | {"abort_sh": run.abort_sh, "lab": str(self.home)}, build_dir

    def _config(self, jenkinsfile: Path, params: dict[str, object], number: int, build_dir: Path) -> dict:
        return {
            "jenkinsfile": str(jenkinsfile),
            "params": params,
            "build": {"number": number, "job": "hil"},
            "agents": [
                {
                    "name": a.name,
                    "labels": list(a.labels),
                    "env": a.env,
                    "online": a.online,
                    "busy": a.busy,
                    "root": str(self.workspace(a.name).parents[1]),
                }
                for a in self.agents
            ],
            "resources": [
                {
                    "name": r.name,
                    "labels": list(r.labels),
                    "busy": r.busy,
                    "note": r.note,
                    "free_after": r.free_after,
                }
                for r in self.resources
            ],
            "scm": str(self.scm) if self.scm else None,
            "scm_broken_on": list(self.scm_broken_on),
            "credentials": self.credentials,
            "path": [str(p) for p in self.path],
            "tools": list(self.tools),
            "events": str(build_dir / "events.jsonl"),
            "console": str(build_dir / "console.log"),
            "stashes": str(build_dir / "stashes"),
            "archive": str(build_dir / "archive"),
        }


@dataclass(frozen=True)
class Run:
    """One build to run: of `jenkinsfile` in `jenkins`'s lab, with `params`; `abort_sh`: a regular
    expression, the build is aborted while an `sh` whose script matches it runs."""

    jenkins: Jenkins
    jenkinsfile: Path
    params: dict[str, object]
    abort_sh: str | None = None


def run_together(runs: list[Run], *, timeout: float = 1800) -> list[Build]:
    """Builds of one or several labs, one after another in one JVM (a JVM takes seconds to start). Each
    lab keeps its resources from build to build, as updateLock leaves them."""
    if shutil.which("groovy") is None:
        pytest.skip("groovy is not installed (apt-get install groovy default-jre-headless)")
    prepared = [run.jenkins._prepare(run) for run in runs]
    batch = prepared[0][1] / "builds.json"
    batch.write_text(json.dumps([config for config, _ in prepared], indent=2))
    command = ["groovy", str(RUNNER), str(batch)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    done = [_build(build_dir, out.stdout + out.stderr) for _, build_dir in prepared]
    for run, build in zip(runs, done, strict=True):
        run.jenkins.resources = build.resources()  # labels and notes that updateLock changed stay changed
    return done


def _build(build_dir: Path, runner_output: str) -> Build:
    """A finished build, read back from its directory."""
    console = build_dir / "console.log"
    text = console.read_text(errors="replace") if console.exists() else ""
    events_file = build_dir / "events.jsonl"
    lines = events_file.read_text().splitlines() if events_file.exists() else []
    events = [json.loads(line) for line in lines]
    results = [e for e in events if e["event"] == "result"]
    assert results, f"the runner ended without a result:\n{text[-3000:]}\n{runner_output[-3000:]}"
    return Build(result=results[-1]["result"], events=events, console=text, archive=build_dir / "archive",
                 description=results[-1].get("description"))  # fmt: skip


def _resource(data: dict) -> Resource:
    return Resource(
        data["name"],
        tuple(data["labels"]),
        bool(data.get("busy")),
        data.get("note") or "",
        data.get("free_after") or 0,
    )
