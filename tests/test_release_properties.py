"""Properties of the gate over generated result sets: it never finalizes unless every required cell passed."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import event, given, settings
from hypothesis import strategies as st

from hil.release.gate import FINAL, evaluate
from hil.release.policy import Policy, PolicyModel
from hil.release.results import Attempt, ResultSet

VERSION = "2.0.0"
# Mostly passes, so that generated sets land on both sides of the verdict.
OUTCOMES = ["passed"] * 25 + ["failed", "error", "skipped", "unknown"]
DEVICE_TYPES = ["qemux86-64", "raspberrypi4-64"]
SUITE_NAMES = ["boot", "networking", "time_sync", "hostapp_update"]


@st.composite
def policies(draw) -> Policy:
    device_types = draw(st.lists(st.sampled_from(DEVICE_TYPES), min_size=1, unique=True))
    model = PolicyModel.model_validate(
        {
            "device_types": {
                dt: {
                    "suites": {
                        suite: {
                            "min_tests": draw(st.integers(1, 4)),
                            "allow_skips": draw(st.lists(st.sampled_from(["test_0", "test_1", "test_*"]))),
                        }
                        for suite in draw(st.lists(st.sampled_from(SUITE_NAMES), min_size=1, unique=True))
                    }
                }
                for dt in device_types
            }
        }
    )
    return Policy(path="generated.yaml", sha256="0" * 64, model=model)


@st.composite
def attempts_for(draw, policy: Policy) -> list[Attempt]:
    """Attempts over the policy's cells (and a stray suite now and then), with retries and other versions."""
    found: list[Attempt] = []
    for dt, rules in policy.model.device_types.items():
        suites = list(rules.suites) + draw(st.sampled_from([[]] * 5 + [["bluetooth"]]))
        for suite in suites:
            for n in range(draw(st.sampled_from([0] + [4, 5, 6] * 5))):
                for retry in range(draw(st.integers(1, 3))):
                    found.append(
                        Attempt(
                            device_type=dt,
                            suite=suite,
                            test=f"suites.{suite}.test_{suite}::test_{n}",
                            outcome=draw(st.sampled_from(OUTCOMES)),
                            run_id=f"run-{retry}",
                            started=f"2026-11-22T0{draw(st.integers(0, 9))}:00:00+00:00",
                            os_version=draw(st.sampled_from([VERSION] * 30 + ["1.9.0"])),
                            rig="r",
                            image="i",
                            source=f"{dt}-{retry}.xml",
                        )
                    )
    return found


def oracle_passes(policy: Policy, attempts: list[Attempt], problems: list[str]) -> bool:
    """An independent reading of the rule: each required cell's latest attempts pass, nothing else is off."""
    if problems or any(a.os_version != VERSION for a in attempts):
        return False
    latest: dict[tuple[str, str, str], Attempt] = {}
    for a in sorted(attempts, key=lambda a: (a.started, a.run_id)):
        latest[a.key] = a
    for dt, rules in policy.model.device_types.items():
        if any(k[0] == dt and k[1] not in rules.suites for k in latest):
            return False
        for suite, rule in rules.suites.items():
            cell = [a for k, a in latest.items() if k[:2] == (dt, suite)]
            if sum(a.outcome == "passed" for a in cell) < rule.min_tests:
                return False
            for a in cell:
                if a.outcome == "skipped" and rule.skip_allowed(a.test):
                    continue
                if a.outcome != "passed":
                    return False
    return True


def decide(policy: Policy, attempts: list[Attempt], problems: list[str] = ()) -> str:
    results = ResultSet(attempts=attempts, problems=list(problems))
    return evaluate(
        policy, results, release_id="1", version=VERSION, device_types=list(policy.model.device_types)
    ).verdict


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_gate_finalizes_exactly_when_every_required_cell_passed(data) -> None:
    policy = data.draw(policies())
    attempts = data.draw(attempts_for(policy))
    problems = data.draw(st.sampled_from([[]] * 5 + [["x.xml: not parsable as XML"]]))
    verdict = decide(policy, attempts, problems)
    event(f"verdict: {verdict}")
    assert (verdict == FINAL) == oracle_passes(policy, attempts, problems)


@st.composite
def passing_sets(draw) -> tuple[Policy, list[Attempt]]:
    policy = draw(policies())
    attempts = [
        Attempt(
            device_type=dt,
            suite=suite,
            test=f"suites.{suite}.test_{suite}::test_{n}",
            outcome="passed",
            run_id="run",
            started="2026-11-22T06:00:00",
            os_version=VERSION,
            rig="r",
            image="i",
            source="a.xml",
        )
        for dt, rules in policy.model.device_types.items()
        for suite, rule in rules.suites.items()
        for n in range(rule.min_tests + draw(st.integers(0, 2)))
    ]
    return policy, attempts


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_single_damage_to_a_passing_set_refuses(data) -> None:
    policy, attempts = data.draw(passing_sets())
    assert decide(policy, attempts) == FINAL
    i = data.draw(st.integers(0, len(attempts) - 1))
    target = attempts[i]
    later = "2026-11-22T07:00:00"
    damage = data.draw(
        st.sampled_from(
            ["fail", "error", "skip", "drop_cell", "truncate", "version", "stray_suite", "retry_fails"]
        )
    )
    rule = policy.model.device_types[target.device_type].suites[target.suite]
    if damage == "skip" and rule.skip_allowed(target.test):
        damage = "fail"
    if damage in ("fail", "error", "skip"):
        outcome = {"fail": "failed", "error": "error", "skip": "skipped"}[damage]
        attempts[i] = replace(target, outcome=outcome)
    elif damage == "drop_cell":
        attempts = [a for a in attempts if a.key[:2] != target.key[:2]]
    elif damage == "truncate":
        cell = [a for a in attempts if a.key[:2] == target.key[:2]]
        attempts = [a for a in attempts if a.key[:2] != target.key[:2]] + cell[: rule.min_tests - 1]
    elif damage == "version":
        attempts[i] = replace(target, os_version="1.9.0")
    elif damage == "stray_suite":
        attempts.append(replace(target, suite="bluetooth"))
    else:
        attempts.append(replace(target, outcome="failed", run_id="retry", started=later))
    assert decide(policy, attempts) != FINAL, damage
