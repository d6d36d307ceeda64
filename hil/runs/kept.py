"""A run kept beside its artifacts when the store could not take it, and pushed to a store later.

A session whose store is unreachable at its end (a lab's PostgreSQL down or restarting for longer than
the retries wait) must lose nothing: the run's record (the Run as it would have been recorded, and where
its JUnit file is) goes to hil-run-record.json in the run's artifacts directory, and `hil runs push DIR`
records it later. The JUnit file itself stays where the session wrote it (the artifacts hold it); pushing
checks its bytes against the hash the run recorded, so what lands is what the session wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hil.errors import HilError
from hil.results.model import MAX_JUNIT_BYTES, Unreadable, read_bounded
from hil.runs.model import KEPT, Run, RunFacts, TestResult
from hil.runs.store import RunStore
from hil.store.db import StoreConnectionError
from hil.store.url import StoreUrl

_FORMAT = 1


def keep(run: Run, junit: Path, directory: Path, store: str) -> Path:
    """Write the run's record into `directory` (atomically: a half-written record is never there); the
    file. `store` is where it was meant to go, as shown (masked)."""
    junit = junit.resolve()
    directory = directory.resolve()
    shown = str(junit.relative_to(directory)) if junit.is_relative_to(directory) else str(junit)
    record = {"format": _FORMAT, "store": store, "junit": shown, "run": asdict(run)}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEPT
    partial = path.with_name(f".{KEPT}.{os.getpid()}")
    partial.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(partial, path)
    return path


def kept_file(directory: Path) -> Path:
    """The kept record in `directory` (or `directory` itself when it names the file)."""
    path = directory if directory.name == KEPT and directory.is_file() else directory / KEPT
    if not path.is_file():
        raise HilError(f"no run is kept in {directory} (no {KEPT}): nothing to push")
    return path


def load(directory: Path) -> tuple[Run, bytes, str]:
    """The run kept in `directory`, its JUnit file's bytes (checked against the run's hash), and the store
    it was meant for (as shown)."""
    path = kept_file(directory)
    try:
        record = json.loads(path.read_text())
        if record.get("format") != _FORMAT:
            raise HilError(f"{path} is in format {record.get('format')!r}; this hil reads {_FORMAT}")
        run = _run(record["run"])
        junit = path.parent / record["junit"]  # an absolute path stays itself
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HilError(f"{path} is not a kept run hil can read ({exc})") from None
    if not junit.is_file():
        junit = Path(run.junit_path)
    try:
        data = read_bounded(junit, MAX_JUNIT_BYTES)
    except Unreadable as exc:
        raise HilError(f"run {run.run_id}: its JUnit file {junit}: {exc}") from None
    if hashlib.sha256(data).hexdigest() != run.junit_sha256:
        raise HilError(f"run {run.run_id}: {junit} is no longer the JUnit file the run wrote (its sha256 "
                       f"differs from {run.junit_sha256}); the run cannot be pushed as recorded")  # fmt: skip
    return run, data, str(record.get("store", ""))


def _run(fields: dict[str, Any]) -> Run:
    """A Run from its JSON form (lists back to tuples)."""
    facts: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in fields.pop("facts").items()
    }
    tests = []
    for test in fields.pop("tests"):
        tests.append(TestResult(**{**test, "artifacts": tuple(test.get("artifacts", ()))}))
    return Run(**fields, facts=RunFacts(**facts), tests=tuple(tests))


def record_or_keep(
    url: StoreUrl, store: RunStore | None, run: Run, junit: bytes, junit_path: Path, retry_for: float
) -> str:
    """Record the run in `store` (or in a store opened now at `url`, when the session could not open it),
    trying a dropped connection again for up to `retry_for` seconds; when the store stays unreachable,
    keep the run in its artifacts directory. The one line that says which."""
    try:
        store = store or RunStore(url)
        store.record(run, junit, retry_for=retry_for)
        return f"hil: run {run.run_id} recorded in {store.where} (hil runs show {run.run_id})"
    except StoreConnectionError as exc:
        artifacts = Path(run.facts.artifacts)
        try:
            keep(run, junit_path, artifacts, url.shown)
        except OSError as err:
            return f"hil: the run was NOT recorded: {exc}; nor could it be kept in {artifacts} ({err})"
        return (
            f"hil: store {url.shown} unreachable ({exc.why}); run {run.run_id} kept in {artifacts}: "
            f"send it with 'hil runs push {artifacts}'"
        )
