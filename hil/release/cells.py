"""One device type x suite of the decision table: judged from the attempts that count, against the
policy's rule and the tests the installed suite has."""

from __future__ import annotations

from dataclasses import dataclass

from hil.release.policy import Policy, SuiteRule
from hil.results.model import ERROR, FAILED, PASSED, SKIPPED, Attempt

CELL_PASSED, CELL_FAILED, CELL_MISSING, CELL_TOO_FEW = "passed", "failed", "missing", "too few"
CELL_INCOMPLETE, CELL_NOT_APPLICABLE = "incomplete", "not applicable"
# How many test names a reason lists before it says "and N more".
_SHOWN = 3


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
    notes: tuple[str, ...] = ()


def skip_allowed(policy: Policy, rule: SuiteRule, attempt: Attempt) -> bool:
    """A skip the policy accepts: a test it lists, or one for a feature the run's OS profile may lack."""
    return rule.skip_allowed(attempt.test) or policy.may_lack(
        attempt.session.os_profile, attempt.missing_feature
    )


def judge_cell(
    policy: Policy,
    device_type: str,
    suite: str,
    attempts: list[Attempt],
    expected: frozenset[str] | None,
) -> Cell:
    """Judge one device type x suite from the attempts that count and the tests the suite has."""
    rule = policy.model.device_types[device_type].suites[suite]
    where = f"{device_type}/{suite}"
    failing = _failing(policy, rule, attempts)
    declared = _declared_skips(policy, attempts)
    gaps = _suite_gaps(where, suite, attempts, expected)
    state, reasons = _state(where, attempts, failing, gaps, declared, rule.min_tests)
    return Cell(
        device_type=device_type,
        suite=suite,
        state=state,
        passed=_count(attempts, PASSED),
        failed=len(failing),
        skipped=_count(attempts, SKIPPED),
        min_tests=rule.min_tests,
        reasons=reasons,
        failing=failing,
        notes=_notes(where, state, attempts, declared, rule.min_tests),
    )


def _failing(policy: Policy, rule: SuiteRule, attempts: list[Attempt]) -> tuple[FailingTest, ...]:
    """The tests that keep the cell from passing, by name: failed, errored, or a skip not allowed."""
    return tuple(
        FailingTest(a.test, a.outcome, a.message, a.session.source, a.artifacts)
        for a in sorted(attempts, key=lambda a: a.test)
        if a.outcome not in (PASSED, SKIPPED) or (a.outcome == SKIPPED and not skip_allowed(policy, rule, a))
    )


def _declared_skips(policy: Policy, attempts: list[Attempt]) -> list[Attempt]:
    """The skips for a feature the policy declares the run's OS profile may lack."""
    return [
        a
        for a in attempts
        if a.outcome == SKIPPED and policy.may_lack(a.session.os_profile, a.missing_feature)
    ]


def _suite_gaps(
    where: str, suite: str, attempts: list[Attempt], expected: frozenset[str] | None
) -> tuple[str, ...]:
    """Why the results are not the installed suite whole: a suite it does not have, or tests missing or
    foreign (of no results at all, "no results" says enough)."""
    if expected is None:
        return (f"{where}: the installed suites have no suite '{suite}'; cannot tell its tests",)
    return _gaps(where, attempts, expected) if attempts else ()


def _state(
    where: str,
    attempts: list[Attempt],
    failing: tuple[FailingTest, ...],
    gaps: tuple[str, ...],
    declared: list[Attempt],
    min_tests: int,
) -> tuple[str, tuple[str, ...]]:
    """The cell's state and the reasons it is not passed: the first of these that holds."""
    passed, needed = _count(attempts, PASSED), _needed(min_tests, declared)
    if not attempts:
        return CELL_MISSING, (f"{where}: no results", *gaps)
    if failing:
        return CELL_FAILED, (*(f"{where}: {f.test} {_verb(f)}" for f in failing), *gaps)
    if gaps:
        return CELL_INCOMPLETE, gaps
    if len(declared) == len(attempts):
        return CELL_NOT_APPLICABLE, ()
    if passed < needed:
        return CELL_TOO_FEW, (f"{where}: {passed} test(s) passed, the policy needs at least {needed}",)
    return CELL_PASSED, ()


def _notes(
    where: str, state: str, attempts: list[Attempt], declared: list[Attempt], min_tests: int
) -> tuple[str, ...]:
    """What the declared missing features did to a cell: made it not applicable, or lowered its minimum."""
    if state == CELL_NOT_APPLICABLE:
        lacks = sorted({(a.session.os_profile, a.missing_feature) for a in declared})
        return (
            f"{where}: not applicable: every test was skipped because "
            + "; ".join(f"OS profile {p} lacks {f}" for p, f in lacks)
            + ", which the policy declares it may; not counted as passed",
        )
    if state == CELL_PASSED and _needed(min_tests, declared) < min_tests:
        passed, applicable = _count(attempts, PASSED), len(attempts) - len(declared)
        return (
            f"{where}: {passed} of the {applicable} test(s) that apply passed; the policy's min_tests "
            f"{min_tests} counts among those, the rest were skipped for declared missing features",
        )
    return ()


def _needed(min_tests: int, declared: list[Attempt]) -> int:
    """How many tests must pass."""
    # Each test skipped for a feature the policy declares the OS may lack takes one off the minimum:
    # it does not apply to this OS, so it can neither pass nor be asked to. Nothing else lowers it.
    return max(1, min_tests - len(declared))


def _count(attempts: list[Attempt], outcome: str) -> int:
    return sum(a.outcome == outcome for a in attempts)


def _gaps(where: str, attempts: list[Attempt], expected: frozenset[str]) -> tuple[str, ...]:
    """Tests the installed suite has that the results lack, and tests the results have that it does not."""
    present = {a.local for a in attempts}
    reasons = []
    missing = sorted(expected - present)
    if missing:
        reasons.append(
            f"{where}: {len(missing)} of the {len(expected)} tests the installed suite has are not in the "
            f"results ({_listed(missing)}); a run with -k or --deselect, or one cut short, is partial"
        )
    unknown = sorted(present - expected)
    if unknown:
        reasons.append(
            f"{where}: the results hold tests the installed suite does not have ({_listed(unknown)}); they "
            "come from other suites than the ones installed here"
        )
    return tuple(reasons)


def _listed(tests: list[str]) -> str:
    more = f" and {len(tests) - _SHOWN} more" if len(tests) > _SHOWN else ""
    return ", ".join(tests[:_SHOWN]) + more


def _verb(failing: FailingTest) -> str:
    verb = {FAILED: "failed", ERROR: "errored", SKIPPED: "was skipped, which the policy does not allow"}.get(
        failing.outcome, f"ended '{failing.outcome}'"
    )
    return verb + (f": {failing.message.splitlines()[0]}" if failing.message.strip() else "")
