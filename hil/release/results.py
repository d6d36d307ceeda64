"""Test results in: JUnit XML and allure-results read into attempts, retries resolved by a stated rule."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

# Outcomes every source is mapped onto; anything else is an error, never a pass.
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"

# allure statuses: "broken" is an error outside an assertion, "unknown" means the run did not finish it.
_ALLURE_OUTCOMES = {"passed": PASSED, "failed": FAILED, "broken": ERROR, "skipped": SKIPPED}

# Two records of one test from one session (a rerun plugin, a hand-merged file): the worse one counts.
_SEVERITY = {PASSED: 0, SKIPPED: 1, FAILED: 2, ERROR: 3}

# Jenkins' junit-attachments convention, also honoured in captured output.
_ATTACHMENT = re.compile(r"\[\[ATTACHMENT\|(.+?)\]\]")

_NEVER = datetime.min.replace(tzinfo=UTC)

_SUITE_PROPS = ("hil.rig", "hil.device_type", "hil.image", "hil.os_version", "hil.run_id", "hil.started")


@dataclass(frozen=True)
class Attempt:
    """One execution of one test on one device type, from one result file."""

    device_type: str
    suite: str
    test: str
    outcome: str
    run_id: str
    started: str
    os_version: str
    rig: str
    image: str
    source: str
    message: str = ""
    artifacts: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the test across retries: (device type, suite, test)."""
        return (self.device_type, self.suite, self.test)

    def order(self) -> tuple[datetime, str, int]:
        """Sort key for 'latest attempt wins': start time, run id, then the worse outcome on a full tie."""
        return (_parse_time(self.started), self.run_id, _SEVERITY.get(self.outcome, len(_SEVERITY)))


@dataclass
class ResultSet:
    """Every attempt found, the hash of every file read, and what could not be read (each a refusal)."""

    attempts: list[Attempt] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def latest_attempts(attempts: Iterable[Attempt]) -> dict[tuple[str, str, str], Attempt]:
    """The attempt that counts for each test: the one from the run that started last (all are kept)."""
    chosen: dict[tuple[str, str, str], Attempt] = {}
    for attempt in attempts:
        best = chosen.get(attempt.key)
        if best is None or attempt.order() > best.order():
            chosen[attempt.key] = attempt
    return chosen


def read_results(dirs: Iterable[Path]) -> ResultSet:
    """Read every JUnit XML file, then every allure-results directory, under `dirs`."""
    results = ResultSet()
    roots = []
    for root in map(Path, dirs):
        if root.is_dir():
            roots.append(root)
        else:
            results.problems.append(f"results directory {root} does not exist")
    for root in roots:
        for path in sorted(root.rglob("*.xml")):
            _read_junit(path, results)
    # JUnit first: an allure result from a run that also left JUnit only lends its attachments.
    junit_runs = {a.run_id for a in results.attempts}
    lent: dict[tuple[str, str], tuple[str, ...]] = {}
    for root in roots:
        for allure_dir in sorted({p.parent for p in root.rglob("*-result.json")}):
            _read_allure(allure_dir, results, junit_runs, lent)
    results.attempts = [
        replace(a, artifacts=a.artifacts + lent.get((a.run_id, a.test), ())) for a in results.attempts
    ]
    for root in roots:
        if not any(Path(f).is_relative_to(root) for f in results.files):
            results.problems.append(f"{root} holds no JUnit XML and no allure results")
    return results


def _sha256(path: Path) -> tuple[bytes, str]:
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return _NEVER
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _suite_from_module(dotted: str) -> str:
    """`suites.boot.test_boot` -> `boot`: the fallback when a test carries no hil.suite property."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "suites" else ""


def _properties(element: ET.Element) -> dict[str, str]:
    props = element.find("properties")
    if props is None:
        return {}
    return {p.get("name", ""): p.get("value", "") for p in props.findall("property")}


def _read_junit(path: Path, results: ResultSet) -> None:
    data, digest = _sha256(path)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        results.files[str(path)] = digest
        results.problems.append(f"{path}: not parsable as XML ({exc})")
        return
    if root.tag not in ("testsuites", "testsuite"):
        # Artifacts dirs legitimately hold other XML (device trees, libvirt domains): not evidence.
        results.notes.append(f"{path}: ignored, root element <{root.tag}> is not a JUnit report")
        return
    results.files[str(path)] = digest
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    for testsuite in suites:
        _read_junit_suite(path, testsuite, results)


def _read_junit_suite(path: Path, testsuite: ET.Element, results: ResultSet) -> None:
    props = _properties(testsuite)
    if not props.get("hil.device_type"):
        results.problems.append(
            f"{path}: testsuite '{testsuite.get('name', '')}' has no hil.device_type property; "
            "cannot tell what these results are for"
        )
        return
    props.setdefault("hil.run_id", f"file:{path}")
    own = testsuite.find("properties")
    listed = own.findall("property") if own is not None else []
    versions = sorted({p.get("value", "") for p in listed if p.get("name") == "hil.os_version"})
    if len(versions) > 1:
        results.problems.append(f"{path}: one session reports several OS versions: {', '.join(versions)}")
    # A DUT that never booted reports no version: its failures still belong in the table.
    props["hil.os_version"] = versions[0] if len(versions) == 1 else ""
    started = props.get("hil.started") or testsuite.get("timestamp", "")
    if _parse_time(started) == _NEVER:
        results.problems.append(
            f"{path}: start time '{started}' is not an ISO time; retries cannot be ordered"
        )
    for case in testsuite.iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        suite = _properties(case).get("hil.suite") or _suite_from_module(classname)
        outcome, message = PASSED, ""
        for tag, mapped in (("error", ERROR), ("failure", FAILED), ("skipped", SKIPPED)):
            found = case.find(tag)
            if found is not None:
                outcome, message = mapped, found.get("message", "") or (found.text or "").strip()
                break
        results.attempts.append(
            Attempt(
                device_type=props["hil.device_type"],
                suite=suite,
                test=f"{classname}::{name}",
                outcome=outcome,
                run_id=props["hil.run_id"],
                started=started,
                os_version=props["hil.os_version"],
                rig=props.get("hil.rig", ""),
                image=props.get("hil.image", ""),
                source=str(path),
                message=message[:500],
                artifacts=_junit_artifacts(path, case),
            )
        )


def _junit_artifacts(path: Path, case: ET.Element) -> tuple[str, ...]:
    found = [v for k, v in _properties(case).items() if k.startswith("hil.artifact")]
    for tag in ("system-out", "system-err"):
        for stream in case.findall(tag):
            found += _ATTACHMENT.findall(stream.text or "")
    return tuple(str((path.parent / item).resolve()) for item in found)


def _allure_environment(allure_dir: Path, results: ResultSet) -> dict[str, str]:
    env_file = allure_dir / "environment.properties"
    if not env_file.is_file():
        return {}
    data, results.files[str(env_file)] = _sha256(env_file)
    pairs = (line.split("=", 1) for line in data.decode(errors="replace").splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _read_allure(
    allure_dir: Path,
    results: ResultSet,
    junit_runs: set[str],
    lent: dict[tuple[str, str], tuple[str, ...]],
) -> None:
    env = _allure_environment(allure_dir, results)
    for path in sorted(allure_dir.glob("*-result.json")):
        data, results.files[str(path)] = _sha256(path)
        try:
            record = json.loads(data)
            labels = {lab["name"]: lab["value"] for lab in record.get("labels", [])}
            module = record["fullName"].split("#", 1)[0]
            artifacts = tuple(
                str((allure_dir / a["source"]).resolve()) for a in record.get("attachments", [])
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            results.problems.append(f"{path}: not a readable allure result ({exc})")
            continue
        # Labels first, then environment.properties, where the run's facts may go with or without "hil.".
        props = {
            name: labels.get(name) or env.get(name) or env.get(name.removeprefix("hil."), "")
            for name in _SUITE_PROPS
        }
        test = f"{module}::{record.get('name', '')}"
        if props["hil.run_id"] in junit_runs:
            lent[(props["hil.run_id"], test)] = artifacts
            continue
        if not props["hil.device_type"]:
            results.problems.append(
                f"{path}: no hil.device_type label or environment property; "
                "cannot tell what this result is for"
            )
            continue
        started = props["hil.started"]
        if not started and isinstance(record.get("start"), int):
            started = datetime.fromtimestamp(record["start"] / 1000, UTC).isoformat()
        results.attempts.append(
            Attempt(
                device_type=props["hil.device_type"],
                suite=labels.get("hil.suite") or _suite_from_module(module),
                test=test,
                outcome=_ALLURE_OUTCOMES.get(record.get("status", ""), ERROR),
                run_id=props["hil.run_id"] or f"allure:{allure_dir}",
                started=started,
                os_version=props["hil.os_version"],
                rig=props["hil.rig"],
                image=props["hil.image"],
                source=str(path),
                message=str((record.get("statusDetails") or {}).get("message", ""))[:500],
                artifacts=artifacts,
            )
        )
