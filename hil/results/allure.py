"""allure-results, checked against the JUnit record of the same run: they lend failing tests their
attachments, and any test they report differently (or that only one of the two reports) is a refusal
naming the test. Allure results of a run with no JUnit are not evidence: they carry neither the image
hash nor how the session ended.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

from hil.results.model import ERROR, FAILED, MAX_ALLURE_BYTES, PASSED, SKIPPED, Attempt, Reader, Unreadable

# allure statuses: "broken" is an error outside an assertion, "unknown" means the run did not finish it.
_STATUS = {"passed": PASSED, "failed": FAILED, "broken": ERROR, "skipped": SKIPPED, "unknown": ERROR}
# What the two sources can agree on: Allure's failed/broken split (assertion or not) is not JUnit's
# failure/error split (call or setup/teardown).
_CLASS = {PASSED: "passed", SKIPPED: "skipped", FAILED: "failing", ERROR: "failing"}


def read_allure(reader: Reader, allure_dir: Path) -> None:
    """Check one allure-results directory against the JUnit runs already read, and lend attachments."""
    results = reader.results
    env = _environment(reader, allure_dir)
    junit: dict[str, dict[str, list[Attempt]]] = defaultdict(lambda: defaultdict(list))
    for attempt in results.attempts:
        junit[attempt.session.run_id][attempt.test].append(attempt)
    seen: dict[str, set[str]] = defaultdict(set)
    lent: dict[tuple[str, str], tuple[str, ...]] = {}
    orphans: Counter[str] = Counter()
    for path in sorted(allure_dir.glob("*-result.json")):
        try:
            record = _record(reader.read(path, MAX_ALLURE_BYTES))
        except Unreadable as exc:
            reader.refuse(path, f"not a readable allure result ({exc})")
            continue
        labels = {lab["name"]: lab["value"] for lab in record["labels"]}
        run_id = labels.get("hil.run_id") or env.get("hil.run_id") or env.get("run_id", "")
        test = f"{record['fullName'].split('#', 1)[0]}::{record['name']}"
        if run_id not in junit:
            orphans[run_id] += 1
            continue
        seen[run_id].add(test)
        said = _STATUS[record["status"]]
        recorded = junit[run_id].get(test, [])
        if not recorded:
            reader.refuse(path, f"Allure reports {test} ({said}); the JUnit of run '{run_id}' does not")
        elif {_CLASS[a.outcome] for a in recorded} != {_CLASS[said]}:
            outcomes = ", ".join(sorted({a.outcome for a in recorded}))
            reader.refuse(path, f"Allure says {test} {said}; the JUnit of run '{run_id}' says {outcomes}")
        lent[(run_id, test)] = lent.get((run_id, test), ()) + tuple(
            str(allure_dir / a["source"]) for a in record["attachments"]
        )
    for run_id, count in sorted(orphans.items()):
        results.problems.append(
            f"{allure_dir}: {count} allure result(s) of run '{run_id or '?'}', which left no JUnit report: "
            "hil gates on JUnit (it carries the image hash and how the session ended) and checks Allure "
            "against it; pass the run's JUnit too, or leave these out"
        )
    for run_id, tests in seen.items():
        unreported = sorted(set(junit[run_id]) - tests)
        if unreported:
            results.problems.append(
                f"{allure_dir}: run '{run_id}' has {len(unreported)} test(s) in JUnit that Allure does not "
                f"report (e.g. {unreported[0]}); the two records of one run must agree"
            )
    results.attempts = [
        replace(a, artifacts=a.artifacts + lent.get((a.session.run_id, a.test), ())) for a in results.attempts
    ]
    if seen:
        results.notes.append(
            f"{allure_dir}: Allure results of run(s) {', '.join(sorted(seen))} checked against their JUnit "
            "record, which is what the gate judges"
        )


def _environment(reader: Reader, allure_dir: Path) -> dict[str, str]:
    """environment.properties: the run's facts, with or without the "hil." prefix."""
    env_file = allure_dir / "environment.properties"
    if not env_file.exists() and not env_file.is_symlink():
        return {}
    try:
        text = reader.read(env_file, MAX_ALLURE_BYTES).decode(errors="replace")
    except Unreadable as exc:
        reader.refuse(env_file, str(exc))
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _record(data: bytes) -> dict:
    """A result record with the fields the gate reads, each of the type allure-pytest writes."""
    try:
        record = json.loads(data)
    except ValueError as exc:
        raise Unreadable(str(exc)) from None
    if not isinstance(record, dict):
        raise Unreadable("not a JSON object")
    for key, kind in (("name", str), ("fullName", str), ("status", str)):
        if not isinstance(record.get(key), kind):
            raise Unreadable(f"its {key} is missing or not a {kind.__name__}")
    if record["status"] not in _STATUS:
        raise Unreadable(f"status {record['status'][:40]!r} is not one allure writes")
    if "#" not in record["fullName"]:
        raise Unreadable(f"fullName {record['fullName'][:80]!r} is not module#test")
    record.setdefault("labels", [])
    record.setdefault("attachments", [])
    labels_ok = isinstance(record["labels"], list) and all(
        isinstance(lab, dict) and isinstance(lab.get("name"), str) and isinstance(lab.get("value"), str)
        for lab in record["labels"]
    )
    attachments_ok = isinstance(record["attachments"], list) and all(
        isinstance(a, dict) and isinstance(a.get("source"), str) and a["source"] == Path(a["source"]).name
        and a["source"] not in ("", ".", "..")
        for a in record["attachments"]
    )  # fmt: skip
    if not labels_ok:
        raise Unreadable("its labels are not a list of name/value pairs")
    if not attachments_ok:
        raise Unreadable("its attachments are not files beside it")
    return record
