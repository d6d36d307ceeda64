"""Properties of the gate over generated sessions and attempts: it finalizes exactly when an independent
reading of the rules says every required cell passed (or is not applicable) on evidence about this image."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from hypothesis import event, given, settings
from hypothesis import strategies as st

from hil.release.catalog import Catalog
from hil.release.gate import Decision, evaluate
from hil.release.policy import Policy, PolicyModel
from hil.release.sessions import CLOCK_SKEW, Subject
from hil.results.model import Attempt, ResultSet, Session, parse_time

VERSION = "2.0.0"
IMAGE, OTHER = "a" * 64, "b" * 64
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
# Mostly passes, so that generated sets land on both sides of the verdict.
OUTCOMES = ["passed"] * 80 + ["failed", "error", "skipped", "unknown"]
DEVICE_TYPES = ["qemux86-64", "raspberrypi4-64"]
SUITE_NAMES = ["boot", "networking", "time_sync", "hostapp_update"]
FEATURES = ["ab-update", "https-time", "rig-dns"]
# Start times: a few, so that retries tie; one far in the future.
STARTS = [f"2026-11-22T0{h}:00:00+00:00" for h in range(4)] + ["2030-01-01T00:00:00+00:00"]


@st.composite
def policies(draw) -> Policy:
    device_types = draw(st.lists(st.sampled_from(DEVICE_TYPES), min_size=1, unique=True))
    suite_rules = st.fixed_dictionaries(
        {
            "min_tests": st.integers(1, 4),
            "allow_skips": st.lists(st.sampled_from(["test_0", "test_1", "test_*"])),
        }
    )
    model = PolicyModel.model_validate(
        {
            "device_types": {
                dt: {"suites": draw(st.dictionaries(st.sampled_from(SUITE_NAMES), suite_rules, min_size=1))}
                for dt in device_types
            },
            "os_profiles": draw(
                st.sampled_from([{}, {"generic": {"may_lack": ["ab-update", "https-time"]}}])
            ),
        }
    )
    return Policy(path="generated.yaml", sha256="0" * 64, model=model)


def catalog_for(policy: Policy, sizes: dict[str, int]) -> Catalog:
    suites = {suite for rules in policy.model.device_types.values() for suite in rules.suites}
    return Catalog(
        {s: frozenset(f"test_{s}::test_{n}" for n in range(sizes[s])) for s in suites}, "generated"
    )


@st.composite
def results_for(draw, policy: Policy, sizes: dict[str, int]) -> list[Attempt]:
    """Sessions per device type and retry; attempts over the policy's cells (a stray suite now and then),
    sometimes fewer or more tests than the suite has, other versions, other images, odd exit statuses."""
    found: list[Attempt] = []
    for dt, rules in policy.model.device_types.items():
        profile = draw(st.sampled_from(["reference", "generic"]))
        for retry in range(draw(st.integers(1, 3))):
            session = Session(
                run_id=f"run-{dt}-{retry}",
                source=f"{dt}-{retry}.xml",
                device_type=dt,
                device_type_source="image",
                os_version=draw(st.sampled_from([VERSION] * 30 + ["1.9.0", ""])),
                os_profile=draw(st.sampled_from([profile] * 19 + ["balenaos"])),
                image="i",
                image_sha256=draw(st.sampled_from([IMAGE] * 30 + [OTHER])),
                started=draw(st.sampled_from(STARTS[:4] * 10 + STARTS[4:])),
                exitstatus=-1,  # set below, from what the session's tests did
            )
            mine = []
            for suite in list(rules.suites) + draw(st.sampled_from([[]] * 8 + [["bluetooth"]])):
                count = sizes.get(suite, 3) + draw(st.sampled_from([0] * 12 + [-1, 1]))
                for n in range(max(count, 0)):
                    if draw(st.integers(0, 9)) == 0:
                        continue  # this retry did not run it
                    outcome = draw(st.sampled_from(OUTCOMES))
                    feature = draw(st.sampled_from(["", *FEATURES])) if outcome == "skipped" else ""
                    test = f"test_{suite}::test_{n}"
                    mine.append(
                        Attempt(
                            session, suite, f"suites.{suite}.{test}", test, outcome, missing_feature=feature
                        )
                    )
            failing = any(a.outcome in ("failed", "error", "unknown") for a in mine)
            status = draw(st.sampled_from([int(failing)] * 20 + [0, 1, 2]))
            session = replace(session, exitstatus=status)
            found += [replace(a, session=session) for a in mine]
    return found


def oracle_passes(policy: Policy, attempts: list[Attempt], catalog: Catalog, problems: list[str]) -> bool:
    """An independent reading of the rules."""
    if problems:
        return False
    for session in {a.session for a in attempts}:
        failing = any(a.outcome in ("failed", "error", "unknown") for a in attempts if a.session == session)
        if (
            session.os_version != VERSION
            or session.image_sha256 != IMAGE
            or session.exitstatus not in (0, 1)
            or (session.exitstatus == 1) != failing
            or parse_time(session.started) > NOW + CLOCK_SKEW
        ):
            return False
    for dt in policy.model.device_types:
        if len({a.session.os_profile for a in attempts if a.device_type == dt}) > 1:
            return False  # one image, one OS profile
    latest: dict[tuple[str, str, str], Attempt] = {}
    groups: dict[tuple[str, str, str], list[Attempt]] = {}
    for a in attempts:
        groups.setdefault(a.key, []).append(a)
    rank = ["passed", "skipped", "failed", "error", "unknown"]
    for key, group in groups.items():
        newest = max(parse_time(a.session.started) for a in group)
        top = [a for a in group if parse_time(a.session.started) == newest]
        by_run = {}
        for a in sorted(top, key=lambda a: rank.index(a.outcome)):
            by_run[a.session.run_id] = a.outcome
        if len(by_run) > 1 and len(set(by_run.values())) > 1:
            return False
        latest[key] = max(top, key=lambda a: rank.index(a.outcome))
    for dt, rules in policy.model.device_types.items():
        if any(k[0] == dt and k[1] not in rules.suites for k in latest):
            return False
        any_passed = False
        for suite, rule in rules.suites.items():
            cell = [a for k, a in latest.items() if k[:2] == (dt, suite)]
            if not cell or {a.local for a in cell} != catalog.suites[suite]:
                return False
            may_lack = [policy.may_lack(a.session.os_profile, a.missing_feature) for a in cell]
            if all(a.outcome == "skipped" for a in cell) and all(may_lack):
                continue  # not applicable for this OS profile
            for a, lacks in zip(cell, may_lack, strict=True):
                if a.outcome == "skipped" and not (rule.skip_allowed(a.test) or lacks):
                    return False
                if a.outcome not in ("passed", "skipped"):
                    return False
            if sum(a.outcome == "passed" for a in cell) < rule.min_tests:
                return False
            any_passed = True
        if not any_passed:
            return False
    return True


def decide(policy: Policy, attempts: list[Attempt], catalog: Catalog, problems: list[str] = ()) -> Decision:
    results = ResultSet(
        sessions=list({a.session for a in attempts}), attempts=attempts, problems=list(problems)
    )
    images = dict.fromkeys(policy.model.device_types, IMAGE)
    subject = Subject("1", VERSION, tuple(policy.model.device_types), images)
    return evaluate(policy, results, subject, catalog, now=NOW)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_gate_finalizes_exactly_when_every_required_cell_passed(data) -> None:
    policy = data.draw(policies())
    sizes = {s: data.draw(st.integers(1, 5)) for s in SUITE_NAMES}
    catalog = catalog_for(policy, sizes)
    attempts = data.draw(results_for(policy, sizes))
    problems = data.draw(st.sampled_from([[]] * 5 + [["x.xml: not parsable as XML"]]))
    decision = decide(policy, attempts, catalog, problems)
    event(f"verdict: {decision.verdict}")
    assert decision.passed == oracle_passes(policy, attempts, catalog, problems), decision.reasons


@st.composite
def passing_sets(draw) -> tuple[Policy, Catalog, list[Attempt]]:
    policy = draw(policies())
    sizes = {s: 5 for s in SUITE_NAMES}
    session = Session("run", "a.xml", "", "image", VERSION, "reference", "i", IMAGE, "2026-11-22T06:00:00", 0)
    attempts = [
        Attempt(
            replace(session, device_type=dt, run_id=f"run-{dt}"),
            suite,
            f"suites.{suite}.{test}",
            test,
            "passed",
        )
        for dt, rules in policy.model.device_types.items()
        for suite in rules.suites
        for test in (f"test_{suite}::test_{n}" for n in range(sizes[suite]))
    ]
    return policy, catalog_for(policy, sizes), attempts


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_single_damage_to_a_passing_set_refuses(data) -> None:
    policy, catalog, attempts = data.draw(passing_sets())
    assert decide(policy, attempts, catalog).passed
    i = data.draw(st.integers(0, len(attempts) - 1))
    target = attempts[i]
    damage = data.draw(
        st.sampled_from(
            ["fail", "error", "skip", "drop_test", "drop_cell", "version", "image", "stray_suite",
             "retry_fails", "tie", "interrupted", "future", "unknown_test"]
        )
    )  # fmt: skip
    rule = policy.model.device_types[target.device_type].suites[target.suite]
    if damage == "skip" and rule.skip_allowed(target.test):
        damage = "fail"
    session = target.session
    if damage in ("fail", "error", "skip"):
        outcome = {"fail": "failed", "error": "error", "skip": "skipped"}[damage]
        attempts[i] = replace(
            target, outcome=outcome, session=replace(session, exitstatus=int(damage != "skip"))
        )
        attempts = [replace(a, session=attempts[i].session) if a.session == session else a for a in attempts]
    elif damage == "drop_test":
        attempts.pop(i)  # min_tests may still be met: the installed suite says a test is missing
    elif damage == "drop_cell":
        attempts = [a for a in attempts if a.key[:2] != target.key[:2]]
    elif damage in ("version", "image", "interrupted", "future"):
        changed = {"version": {"os_version": "1.9.0"}, "image": {"image_sha256": OTHER},
                   "interrupted": {"exitstatus": 2},
                   "future": {"started": "2030-01-01T00:00:00"}}[damage]  # fmt: skip
        attempts[i] = replace(target, session=replace(session, **changed))
    elif damage == "stray_suite":
        attempts.append(replace(target, suite="bluetooth"))
    elif damage == "unknown_test":
        attempts.append(replace(target, test=target.test + "x", local=target.local + "x"))
    else:
        failed_session = replace(session, run_id="retry", exitstatus=1, started=(
            "2026-11-22T07:00:00" if damage == "retry_fails" else session.started))  # fmt: skip
        attempts.append(replace(target, outcome="failed", session=failed_session))
    assert not decide(policy, attempts, catalog).passed, damage
