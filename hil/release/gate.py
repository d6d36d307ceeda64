"""The decision: results against a policy for one release, as a device type x suite table and a verdict
with reasons. Final only when every required cell passed (or is not applicable for the run's OS) and
nothing else objects: an unreadable file, a session not provably about this release, a tie, a device type
CI says produced no results."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from hil.release.catalog import Catalog
from hil.release.cells import CELL_NOT_APPLICABLE, CELL_PASSED, Cell, judge_cell
from hil.release.policy import Policy
from hil.release.sessions import Subject, judge_sessions, latest_attempts
from hil.results.model import Attempt, ResultSet

FINAL, REFUSED = "final", "refused"


@dataclass(frozen=True)
class Decision:
    """The verdict for one release: final only when every required cell passed and nothing else objects."""

    release_id: str
    version: str
    device_types: tuple[str, ...]
    verdict: str
    cells: tuple[Cell, ...]
    reasons: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """True when the verdict is final."""
        return self.verdict == FINAL

    def as_dict(self) -> dict:
        """The decision as plain data, for the evidence."""
        return asdict(self)


def evaluate(
    policy: Policy,
    results: ResultSet,
    subject: Subject,
    catalog: Catalog,
    now: datetime | None = None,
    missing: Mapping[str, str] | None = None,
) -> Decision:
    """Apply `policy` to `results` for the release `subject` describes, against the installed suites.
    `missing` maps device types CI says produced no results to why; each of them is refused."""
    reasons = [*results.problems, *_subject_reasons(policy, subject)]
    notes = list(results.notes)
    judged = judge_sessions(results.attempts, results.sessions, subject, now or datetime.now(UTC))
    reasons += judged.reasons
    notes += judged.notes
    current, ties = latest_attempts(a for a in results.attempts if a.session in judged.counted)
    reasons += ties
    by_cell = _by_cell(current.values())
    cells: list[Cell] = []
    for device_type in subject.device_types:
        if missing and device_type in missing:
            reasons.append(_missing_reason(device_type, missing[device_type], results))
        own, objections = _device_type_cells(policy, device_type, by_cell, catalog)
        reasons += objections
        notes += [note for cell in own for note in cell.notes]
        cells += own
    ok = cells and all(c.state in (CELL_PASSED, CELL_NOT_APPLICABLE) for c in cells)
    return Decision(
        release_id=subject.release_id,
        version=subject.version,
        device_types=subject.device_types,
        verdict=FINAL if ok and not reasons else REFUSED,
        cells=tuple(cells),
        reasons=tuple(reasons),
        notes=tuple(notes),
    )


def _subject_reasons(policy: Policy, subject: Subject) -> list[str]:
    """What is wrong with the release itself, whatever the results: no version, another version than the
    policy's, no device types."""
    reasons = []
    if not subject.version:
        # Unversioned results would otherwise "match" it.
        reasons.append(f"release {subject.release_id} has no version to hold the results against")
    if policy.version and policy.version != subject.version:
        reasons.append(
            f"the policy is for version {policy.version}, the release is version {subject.version}"
        )
    if not subject.device_types:
        reasons.append("the release names no device types, so nothing could show it works")
    return reasons


def _missing_reason(device_type: str, why: str, results: ResultSet) -> str:
    """The refusal of a device type CI says produced no results: its reason, or, when the results hold a
    session of it all the same, the contradiction (a missing reason never lets a device type pass)."""
    sources = sorted({s.source for s in results.sessions if s.device_type == device_type})
    if sources:
        return (
            f"{device_type}: listed as missing ({why}), yet the results hold {len(sources)} session(s) "
            f"of it (e.g. {sources[0]}): contradictory evidence"
        )
    return f"{device_type}: missing: {why}"


def _by_cell(attempts: Iterable[Attempt]) -> dict[tuple[str, str], list[Attempt]]:
    """The attempts grouped by (device type, suite)."""
    by_cell: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_cell[(attempt.device_type, attempt.suite)].append(attempt)
    return by_cell


def _device_type_cells(
    policy: Policy, device_type: str, by_cell: dict[tuple[str, str], list[Attempt]], catalog: Catalog
) -> tuple[list[Cell], list[str]]:
    """The cells of one device type, one per suite its rules name, and the reasons to refuse: results
    for suites the rules do not name, no suite that applies, and each cell's own."""
    rules = policy.rules_for(device_type)
    if rules is None:
        return [], [f"the policy ({policy.path}) has no rules for device type {device_type}"]
    reasons = []
    for (dt, suite), attempts in sorted(by_cell.items()):
        if dt == device_type and suite not in rules.suites:
            named = f"suite '{suite}'" if suite else "no suite"
            reasons.append(
                f"{device_type}: {len(attempts)} test(s) in {named}, which the policy does not name "
                f"(e.g. {attempts[0].test})"
            )
    cells = [
        judge_cell(
            policy, device_type, suite, by_cell.get((device_type, suite), []), catalog.suites.get(suite)
        )
        for suite in rules.suites
    ]
    if cells and all(c.state == CELL_NOT_APPLICABLE for c in cells):
        reasons.append(f"{device_type}: every suite is not applicable, so nothing shows the image works")
    return cells, reasons + [reason for cell in cells for reason in cell.reasons]
