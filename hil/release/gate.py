"""The decision: results against a policy, as a device type x suite table and a verdict with reasons."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

from hil.release.policy import Policy, SuiteRule
from hil.release.results import ERROR, FAILED, PASSED, SKIPPED, Attempt, ResultSet, latest_attempts

CELL_PASSED, CELL_FAILED, CELL_MISSING, CELL_TOO_FEW = "passed", "failed", "missing", "too few"
FINAL, REFUSED = "final", "refused"


@dataclass(frozen=True)
class FailingTest:
    """A test that keeps its cell from passing, with where to look."""

    test: str
    outcome: str
    message: str
    source: str
    artifacts: tuple[str, ...]


@dataclass(frozen=True)
class Cell:
    """One device type x suite: its state, its counts and why it is not passed."""

    device_type: str
    suite: str
    state: str
    passed: int
    failed: int
    skipped: int
    min_tests: int
    reasons: tuple[str, ...]
    failing: tuple[FailingTest, ...]


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
    policy: Policy, results: ResultSet, *, release_id: str, version: str, device_types: list[str]
) -> Decision:
    """Apply `policy` to `results` for a release of `version` shipping for `device_types`."""
    reasons = list(results.problems)
    notes = list(results.notes)
    if not version:
        # Unversioned results would otherwise "match" it.
        reasons.append(f"release {release_id} has no version to hold the results against")
    if policy.version and policy.version != version:
        reasons.append(f"the policy is for version {policy.version}, the release is version {version}")
    if not device_types:
        reasons.append("the release names no device types, so nothing could show it works")

    reasons += _wrong_version(results.attempts, version)
    # Unversioned results (a DUT that never booted) still show in the table; _wrong_version refuses them.
    current = latest_attempts(a for a in results.attempts if a.os_version in (version, ""))
    by_cell: dict[tuple[str, str], list[Attempt]] = defaultdict(list)
    for attempt in current.values():
        by_cell[(attempt.device_type, attempt.suite)].append(attempt)

    others = sorted({dt for dt, _ in by_cell} - set(device_types))
    if others:
        notes.append(
            f"results for {', '.join(others)} ignored: the release ships for {', '.join(device_types)}"
        )

    cells: list[Cell] = []
    for device_type in device_types:
        rules = policy.rules_for(device_type)
        if rules is None:
            reasons.append(f"the policy ({policy.path}) has no rules for device type {device_type}")
            continue
        for (dt, suite), attempts in sorted(by_cell.items()):
            if dt == device_type and suite not in rules.suites:
                named = f"suite '{suite}'" if suite else "no suite"
                reasons.append(
                    f"{device_type}: {len(attempts)} test(s) in {named}, which the policy does not name "
                    f"(e.g. {attempts[0].test})"
                )
        for suite, rule in rules.suites.items():
            cell = _cell(device_type, suite, rule, by_cell.get((device_type, suite), []))
            cells.append(cell)
            reasons += cell.reasons

    verdict = FINAL if not reasons and cells and all(c.state == CELL_PASSED for c in cells) else REFUSED
    return Decision(
        release_id=release_id,
        version=version,
        device_types=tuple(device_types),
        verdict=verdict,
        cells=tuple(cells),
        reasons=tuple(reasons),
        notes=tuple(notes),
    )


def _wrong_version(attempts: list[Attempt], version: str) -> list[str]:
    """One reason per result file that reports another OS version than the one being released."""
    wrong: dict[tuple[str, str], int] = defaultdict(int)
    for attempt in attempts:
        if attempt.os_version != version:
            wrong[(attempt.source, attempt.os_version)] += 1
    return [
        f"{source}: {count} result(s) are for version {other}, not {version}"
        if other
        else f"{source}: {count} result(s) do not say which OS version they are for (no hil.os_version)"
        for (source, other), count in sorted(wrong.items())
    ]


def _cell(device_type: str, suite: str, rule: SuiteRule, attempts: list[Attempt]) -> Cell:
    """Judge one device type x suite from the attempts that count."""
    where = f"{device_type}/{suite}"
    passed = sum(a.outcome == PASSED for a in attempts)
    skipped = sum(a.outcome == SKIPPED for a in attempts)
    failing = tuple(
        FailingTest(a.test, a.outcome, a.message, a.source, a.artifacts)
        for a in sorted(attempts, key=lambda a: a.test)
        if a.outcome not in (PASSED, SKIPPED) or (a.outcome == SKIPPED and not rule.skip_allowed(a.test))
    )
    if not attempts:
        state, reasons = CELL_MISSING, (f"{where}: no results",)
    elif failing:
        state = CELL_FAILED
        reasons = tuple(
            f"{where}: {f.test} {_verb(f.outcome)}" + (f": {f.message.splitlines()[0]}" if f.message else "")
            for f in failing
        )
    elif passed < rule.min_tests:
        state = CELL_TOO_FEW
        reasons = (f"{where}: {passed} test(s) passed, the policy needs at least {rule.min_tests}",)
    else:
        state, reasons = CELL_PASSED, ()
    return Cell(
        device_type=device_type,
        suite=suite,
        state=state,
        passed=passed,
        failed=len(failing),
        skipped=skipped,
        min_tests=rule.min_tests,
        reasons=reasons,
        failing=failing,
    )


def _verb(outcome: str) -> str:
    return {FAILED: "failed", ERROR: "errored", SKIPPED: "was skipped, which the policy does not allow"}.get(
        outcome, f"ended '{outcome}'"
    )
