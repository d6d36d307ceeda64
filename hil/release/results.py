"""Test results in: JUnit XML and allure-results read into attempts, retries resolved by a stated rule."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# Outcomes every source is mapped onto; anything else is an error, never a pass.
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"

# allure statuses: "broken" is an error outside an assertion, "unknown" means the run did not finish it.
_ALLURE_OUTCOMES = {"passed": PASSED, "failed": FAILED, "broken": ERROR, "skipped": SKIPPED}

# Jenkins' junit-attachments convention, also honoured in captured output.
_ATTACHMENT = re.compile(r"\[\[ATTACHMENT\|(.+?)\]\]")

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

    def order(self) -> tuple[datetime, str]:
        """Sort key for 'latest attempt wins': start time, then run id so ties are deterministic."""
        return (_parse_time(self.started), self.run_id)


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
    """Read every JUnit XML file and allure-results directory under `dirs`."""
    results = ResultSet()
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            results.problems.append(f"results directory {root} does not exist")
            continue
        before = len(results.files)
        for path in sorted(root.rglob("*.xml")):
            _read_junit(path, results)
        allure_dirs = sorted({p.parent for p in root.rglob("*-result.json")})
        for allure_dir in allure_dirs:
            _read_allure(allure_dir, results)
        if len(results.files) == before:
            results.problems.append(f"{root} holds no JUnit XML and no allure results")
    _drop_allure_covered_by_junit(results)
    return results


def _sha256(path: Path) -> tuple[bytes, str]:
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
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
    absent = [name for name in ("hil.device_type", "hil.os_version", "hil.run_id") if not props.get(name)]
    if absent:
        results.problems.append(
            f"{path}: testsuite '{testsuite.get('name', '')}' lacks {', '.join(absent)}; "
            "cannot tell what these results are for"
        )
        return
    started = props.get("hil.started") or testsuite.get("timestamp", "")
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


def _read_allure(allure_dir: Path, results: ResultSet) -> None:
    env = _allure_environment(allure_dir, results)
    for path in sorted(allure_dir.glob("*-result.json")):
        data, results.files[str(path)] = _sha256(path)
        try:
            record = json.loads(data)
            labels = {lab["name"]: lab["value"] for lab in record.get("labels", [])}
            full_name = record["fullName"]
        except (ValueError, KeyError, TypeError) as exc:
            results.problems.append(f"{path}: not a readable allure result ({exc})")
            continue
        props = {name: labels.get(name) or env.get(name, "") for name in _SUITE_PROPS}
        if not props["hil.device_type"] or not props["hil.os_version"]:
            results.problems.append(
                f"{path}: no hil.device_type / hil.os_version label or environment property; "
                "cannot tell what this result is for"
            )
            continue
        module = full_name.split("#", 1)[0]
        started = props["hil.started"]
        if not started and isinstance(record.get("start"), int):
            started = datetime.fromtimestamp(record["start"] / 1000, UTC).isoformat()
        results.attempts.append(
            Attempt(
                device_type=props["hil.device_type"],
                suite=labels.get("hil.suite") or _suite_from_module(module),
                test=f"{module}::{record.get('name', '')}",
                outcome=_ALLURE_OUTCOMES.get(record.get("status", ""), ERROR),
                run_id=props["hil.run_id"] or f"allure:{allure_dir}",
                started=started,
                os_version=props["hil.os_version"],
                rig=props["hil.rig"],
                image=props["hil.image"],
                source=str(path),
                message=str((record.get("statusDetails") or {}).get("message", ""))[:500],
                artifacts=tuple(
                    str((allure_dir / a["source"]).resolve()) for a in record.get("attachments", [])
                ),
            )
        )


def _drop_allure_covered_by_junit(results: ResultSet) -> None:
    """When one run left both a JUnit file and allure results, the JUnit file is the authority."""
    junit_runs = {a.run_id for a in results.attempts if a.source.endswith(".xml")}
    results.attempts = [
        a for a in results.attempts if a.source.endswith(".xml") or a.run_id not in junit_runs
    ]
