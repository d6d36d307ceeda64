"""The gate's decision from result files: final only on complete, passing evidence about this release's
image and version, from sessions that ended normally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hil.release.cells import (
    CELL_FAILED,
    CELL_INCOMPLETE,
    CELL_MISSING,
    CELL_NOT_APPLICABLE,
    CELL_PASSED,
    CELL_TOO_FEW,
)
from hil.release.gate import FINAL, REFUSED, evaluate
from hil.release.policy import DEFAULT_POLICY, load_policy
from hil.release.sessions import Subject
from hil.results.read import read_results
from tests.support.release_samples import (
    IMAGE_SHA256,
    OTHER_SHA256,
    SUITES,
    case_id,
    catalog_of,
    write_allure,
    write_junit,
)

SUBJECT = Subject("7", "1.2.0", ("qemux86-64",), {"qemux86-64": IMAGE_SHA256})


def decide(*dirs: Path, subject: Subject = SUBJECT, policy: Path = DEFAULT_POLICY, suites=None):
    return evaluate(load_policy(policy), read_results(list(dirs)), subject, catalog_of(suites))


def cell(decision, suite: str, device_type: str = "qemux86-64"):
    return next(c for c in decision.cells if (c.device_type, c.suite) == (device_type, suite))


def refused_with(decision, start: str) -> bool:
    """The decision refuses, and one of its reasons starts with `start`."""
    return decision.verdict == REFUSED and any(r.startswith(start) for r in decision.reasons)


def with_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    return path


def test_a_complete_passing_run_is_final(tmp_path: Path) -> None:
    write_junit(tmp_path / "agent1" / "junit.xml")
    decision = decide(tmp_path)
    assert decision.verdict == FINAL, decision.reasons
    assert {c.state for c in decision.cells} == {CELL_PASSED}
    assert cell(decision, "boot").passed == 5


def test_one_failing_test_refuses_and_names_it(tmp_path: Path) -> None:
    failing = case_id("networking", "test_resolves_names")
    write_junit(tmp_path / "junit.xml", outcomes={failing: "failed"})
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert cell(decision, "networking").state == CELL_FAILED
    assert any(failing in r and "failed" in r for r in decision.reasons)


def test_a_setup_error_counts_as_failing(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", outcomes={case_id("boot", "test_ssh_answers"): "error"})
    decision = decide(tmp_path)
    assert cell(decision, "boot").state == CELL_FAILED
    assert any("errored" in r and "BootTimeout" in r for r in decision.reasons)


def test_a_missing_device_type_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", device_type="qemux86-64")
    policy = with_policy(
        tmp_path,
        "device_types:\n"
        "  qemux86-64:\n    suites:\n      boot: {min_tests: 5}\n"
        "  raspberrypi4-64:\n    suites:\n      boot: {min_tests: 5}\n",
    )
    subject = Subject("7", "1.2.0", ("qemux86-64", "raspberrypi4-64"),
                      {"qemux86-64": IMAGE_SHA256, "raspberrypi4-64": OTHER_SHA256})  # fmt: skip
    decision = decide(tmp_path, subject=subject, policy=policy)
    assert decision.verdict == REFUSED
    assert cell(decision, "boot", "raspberrypi4-64").state == CELL_MISSING
    assert "raspberrypi4-64/boot: no results" in decision.reasons


def test_a_device_type_the_policy_does_not_name_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml")
    subject = Subject("7", "1.2.0", ("qemux86-64", "genericx86-64-ext"),
                      {"qemux86-64": IMAGE_SHA256, "genericx86-64-ext": OTHER_SHA256})  # fmt: skip
    decision = decide(tmp_path, subject=subject)
    assert decision.verdict == REFUSED
    assert any("no rules for device type genericx86-64-ext" in r for r in decision.reasons)


def test_a_suite_with_fewer_passes_than_the_minimum_refuses(tmp_path: Path) -> None:
    few = {**SUITES, "boot": SUITES["boot"][:3]}
    write_junit(tmp_path / "junit.xml", suites=few)
    decision = decide(tmp_path, suites=few)
    assert cell(decision, "boot").state == CELL_TOO_FEW
    assert "qemux86-64/boot: 3 test(s) passed, the policy needs at least 5" in decision.reasons


def test_a_missing_suite_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", suites={k: v for k, v in SUITES.items() if k != "time_sync"})
    decision = decide(tmp_path)
    assert cell(decision, "time_sync").state == CELL_MISSING
    assert decision.verdict == REFUSED


def test_results_for_a_different_version_refuse(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "junit.xml", version="1.1.9")
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert f"{path}: 14 result(s) are for version 1.1.9, not 1.2.0" in decision.reasons
    # They are not counted either: the table shows nothing for 1.2.0.
    assert {c.state for c in decision.cells} == {CELL_MISSING}


def test_one_stray_file_for_another_version_refuses_an_otherwise_passing_set(tmp_path: Path) -> None:
    write_junit(tmp_path / "a.xml", version="1.2.0")
    write_junit(tmp_path / "b.xml", version="1.1.9", suites={"boot": SUITES["boot"][:1]})
    assert decide(tmp_path).verdict == REFUSED


# Issue 11, point 1: results are tied to the release's image by content hash.


def test_results_about_another_image_refuse_naming_both_hashes(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "junit.xml", image_sha256=OTHER_SHA256)
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert (
        f"{path}: 14 result(s) are about image sha256 {OTHER_SHA256} (/cache/images/hil-1.2.0.img), not the "
        f"image release 7 ships for qemux86-64 (sha256 {IMAGE_SHA256})" in decision.reasons
    )
    assert {c.state for c in decision.cells} == {CELL_MISSING}


def test_suites_from_two_images_refuse(tmp_path: Path) -> None:
    for suite, names in SUITES.items():
        sha = OTHER_SHA256 if suite == "time_sync" else IMAGE_SHA256
        write_junit(tmp_path / f"{suite}.xml", suites={suite: names}, image_sha256=sha)
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert cell(decision, "time_sync").state == CELL_MISSING
    assert any("time_sync.xml: 3 result(s) are about image sha256" in r for r in decision.reasons)


def test_results_without_an_image_hash_refuse(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "junit.xml", image_sha256="")
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert (
        f"{path}: <testsuite name='pytest'> has no hil.image_sha256 property; cannot tell which image these "
        "results are about" in decision.reasons
    )


def test_a_release_that_names_no_image_is_never_final(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml")
    decision = decide(tmp_path, subject=Subject("7", "1.2.0", ("qemux86-64",), {}))
    assert decision.verdict == REFUSED
    assert refused_with(decision, "release 7 names no image for qemux86-64")


def test_the_update_base_is_evidence_and_the_image_under_test_is_judged(tmp_path: Path) -> None:
    base = {"hil.update_base": "/cache/images/hil-1.1.9.img", "hil.update_base_sha256": OTHER_SHA256}
    write_junit(tmp_path / "junit.xml", properties=base)
    decision = decide(tmp_path)
    assert decision.verdict == FINAL, decision.reasons
    assert any(
        f"update base /cache/images/hil-1.1.9.img (sha256 {OTHER_SHA256})" in n for n in decision.notes
    )
    write_junit(tmp_path / "junit.xml", properties={"hil.update_base": base["hil.update_base"]})
    assert any("must come together" in r for r in decide(tmp_path).reasons)


# Issue 11, point 3: the installed suites say what a complete run holds; pytest's exit status is evidence.


def test_a_run_that_left_out_one_test_refuses_though_the_minimum_passed(tmp_path: Path) -> None:
    partial = {**SUITES, "boot": SUITES["boot"][:-1]}  # e.g. -k "not ssh", --deselect
    write_junit(tmp_path / "junit.xml", suites=partial)
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert cell(decision, "boot").state == CELL_INCOMPLETE
    assert (
        "qemux86-64/boot: 1 of the 5 tests the installed suite has are not in the results "
        "(test_boot::test_ssh_answers); a run with -k or --deselect, or one cut short, is partial"
        in decision.reasons
    )


def test_results_holding_tests_the_installed_suite_lacks_refuse(tmp_path: Path) -> None:
    padded = {**SUITES, "boot": [*SUITES["boot"], "test_padding"]}
    write_junit(tmp_path / "junit.xml", suites=padded)
    decision = decide(tmp_path)
    assert cell(decision, "boot").state == CELL_INCOMPLETE
    assert any(
        "tests the installed suite does not have (test_boot::test_padding)" in r for r in decision.reasons
    )


def test_a_suite_the_installed_suites_lack_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml")
    installed = {k: v for k, v in SUITES.items() if k != "hostapp_update"}
    decision = decide(tmp_path, suites=installed)
    assert decision.verdict == REFUSED
    assert any("the installed suites have no suite 'hostapp_update'" in r for r in decision.reasons)


@pytest.mark.parametrize("status", [2, 3, 4, 5, 137])
def test_a_session_that_did_not_end_normally_is_never_final(tmp_path: Path, status: int) -> None:
    path = write_junit(tmp_path / "junit.xml", exitstatus=status)
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert refused_with(decision, f"{path}: the pytest session ended with exit status {status} (")


def test_an_exit_status_that_contradicts_the_testcases_refuses(tmp_path: Path) -> None:
    failing = case_id("boot", "test_ssh_answers")
    write_junit(tmp_path / "a" / "junit.xml", outcomes={failing: "failed"}, exitstatus=0)
    assert any(
        "ended with exit status 0, yet its results hold failing tests" in r
        for r in decide(tmp_path / "a").reasons
    )
    write_junit(tmp_path / "b" / "junit.xml", exitstatus=1)
    assert any(
        "exit status 1 (tests failed), yet no test in it failed" in r for r in decide(tmp_path / "b").reasons
    )


def test_a_failed_run_retried_to_a_pass_is_final(tmp_path: Path) -> None:
    flaky = case_id("networking", "test_reaches_the_host")
    write_junit(
        tmp_path / "first.xml", run_id="r1", started="2026-11-22T06:00:00+00:00", outcomes={flaky: "failed"}
    )
    write_junit(tmp_path / "retry.xml", run_id="r2", started="2026-11-22T06:30:00+00:00")
    assert decide(tmp_path).verdict == FINAL
    attempts = [a for a in read_results([tmp_path]).attempts if a.test == flaky]
    assert sorted(a.outcome for a in attempts) == ["failed", "passed"]


def test_a_retry_that_failed_later_wins_over_an_earlier_pass(tmp_path: Path) -> None:
    flaky = case_id("networking", "test_reaches_the_host")
    # File names sort the other way round, so only the start time can decide.
    write_junit(
        tmp_path / "a.xml", run_id="r2", started="2026-11-22T06:30:00+00:00", outcomes={flaky: "failed"}
    )
    write_junit(tmp_path / "b.xml", run_id="r1", started="2026-11-22T06:00:00+00:00")
    assert cell(decide(tmp_path), "networking").state == CELL_FAILED


# Issue 11, point 4: the order of runs is their start time; a tie that matters and a future time refuse.


@pytest.mark.parametrize(("failing_run", "passing_run"), [("r-a", "r-b"), ("r-b", "r-a")])
def test_two_runs_that_started_together_and_disagree_refuse_whatever_their_names(
    tmp_path: Path, failing_run: str, passing_run: str
) -> None:
    flaky = case_id("networking", "test_reaches_the_host")
    write_junit(tmp_path / "x.xml", run_id=failing_run, outcomes={flaky: "failed"})
    write_junit(tmp_path / "y.xml", run_id=passing_run)
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert any(
        "runs that started at the same time" in r and "cannot tell which is the retry" in r and flaky in r
        for r in decision.reasons
    )


def test_two_runs_that_started_together_and_agree_are_final(tmp_path: Path) -> None:
    write_junit(tmp_path / "x.xml", run_id="r-a")
    write_junit(tmp_path / "y.xml", run_id="r-b")
    assert decide(tmp_path).verdict == FINAL


def test_a_start_time_in_the_future_is_not_evidence(tmp_path: Path) -> None:
    flaky = case_id("networking", "test_reaches_the_host")
    write_junit(tmp_path / "real.xml", run_id="r1", outcomes={flaky: "failed"})
    forged = write_junit(tmp_path / "forged.xml", run_id="r2", started="2999-01-01T00:00:00+00:00")
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert refused_with(decision, f"{forged}: start time 2999-01-01T00:00:00+00:00 is in the future")


def test_a_start_time_that_cannot_be_ordered_refuses(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "junit.xml", started="yesterday")
    assert refused_with(decide(tmp_path), f"{path}: <testsuite name='pytest'>: start time 'yesterday'")


def test_two_records_of_one_test_from_one_session_count_as_the_worse(tmp_path: Path) -> None:
    flaky = case_id("boot", "test_ssh_answers")
    write_junit(tmp_path / "a.xml", run_id="same", outcomes={flaky: "failed"})
    write_junit(tmp_path / "b.xml", run_id="same")
    assert cell(decide(tmp_path), "boot").state == CELL_FAILED


# Issue 11, point 7: Allure is checked against the JUnit of the same run.


def test_allure_results_that_agree_with_junit_lend_attachments_and_say_what_was_judged(
    tmp_path: Path,
) -> None:
    failing = case_id("boot", "test_no_failed_units")
    write_junit(tmp_path / "junit.xml", run_id="run-7", outcomes={failing: "failed"})
    allure = write_allure(tmp_path / "allure-results", run_id="run-7", outcomes={failing: "failed"})
    record_path = next(p for p in allure.glob("*-result.json") if "test_no_failed_units" in p.read_text())
    record = json.loads(record_path.read_text())
    record["attachments"] = [{"name": "dmesg", "source": "ab12-attachment.txt", "type": "text/plain"}]
    record_path.write_text(json.dumps(record))
    decision = decide(tmp_path)
    assert not [r for r in decision.reasons if "allure" in r.lower()]
    (failed,) = cell(decision, "boot").failing
    assert failed.artifacts == (str(allure / "ab12-attachment.txt"),)
    assert any(
        "checked against their JUnit record, which is what the gate judges" in n for n in decision.notes
    )


def test_allure_that_contradicts_junit_refuses_naming_the_test(tmp_path: Path) -> None:
    test = case_id("boot", "test_ssh_answers")
    write_junit(tmp_path / "junit.xml", run_id="same-run")
    write_allure(tmp_path / "allure-results", run_id="same-run", outcomes={test: "failed"})
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert any(
        f"Allure says {test} failed; the JUnit of run 'same-run' says passed" in r for r in decision.reasons
    )


def test_allure_and_junit_that_report_different_tests_refuse(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", run_id="same-run")
    write_allure(
        tmp_path / "allure-results", run_id="same-run", suites={**SUITES, "boot": SUITES["boot"][1:]}
    )
    assert any("1 test(s) in JUnit that Allure does not report" in r for r in decide(tmp_path).reasons)


def test_allure_results_alone_are_not_evidence(tmp_path: Path) -> None:
    write_allure(tmp_path / "allure-results")
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert any(
        "allure result(s) of run 'allure-run', which left no JUnit report" in r for r in decision.reasons
    )


# Results that cannot be read, or are not about anything.


def test_an_unparsable_file_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "good.xml")
    (tmp_path / "truncated.xml").write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest"')
    assert any("truncated.xml: not parsable as XML" in r for r in decide(tmp_path).reasons)


def test_an_unreadable_allure_result_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml")
    (tmp_path / "allure").mkdir()
    (tmp_path / "allure" / "0a-result.json").write_text("{not json")
    assert any("0a-result.json: not a readable allure result" in r for r in decide(tmp_path).reasons)


def test_an_empty_results_dir_refuses(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    decision = decide(tmp_path / "empty")
    assert decision.verdict == REFUSED
    assert f"{tmp_path / 'empty'} holds no JUnit XML and no allure results" in decision.reasons


def test_a_results_dir_that_does_not_exist_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "ok" / "junit.xml")
    decision = decide(tmp_path / "ok", tmp_path / "gone")
    assert f"results directory {tmp_path / 'gone'} does not exist" in decision.reasons


def test_a_suite_the_policy_does_not_name_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", suites={**SUITES, "bluetooth": ["test_pairs"]})
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert any("suite 'bluetooth', which the policy does not name" in r for r in decision.reasons)


def test_other_xml_in_an_artifacts_dir_is_not_evidence(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "domain.xml").write_text("<domain type='qemu'/>")
    decision = decide(tmp_path)
    assert decision.verdict == FINAL, decision.reasons
    assert any("domain.xml: ignored" in n for n in decision.notes)


@pytest.mark.parametrize("outcome", ["failed", "error"])
def test_failing_tests_carry_their_artifacts(tmp_path: Path, outcome: str) -> None:
    failing = case_id("boot", "test_no_failed_units")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "console.log").write_text("login:")
    write_junit(
        tmp_path / "junit.xml", outcomes={failing: outcome}, artifacts={failing: "artifacts/console.log"}
    )
    (failed,) = cell(decide(tmp_path), "boot").failing
    assert failed.artifacts == (str(tmp_path / "artifacts" / "console.log"),)


def test_a_dut_that_never_booted_shows_its_errors_and_refuses(tmp_path: Path) -> None:
    errored = {case_id("boot", n): "error" for n in SUITES["boot"]}
    path = write_junit(tmp_path / "junit.xml", version=None, outcomes=errored)
    decision = decide(tmp_path)
    assert cell(decision, "boot").state == CELL_FAILED
    assert (
        f"{path}: 14 result(s) do not say which OS version they are for (no hil.os_version)"
        in decision.reasons
    )


def test_a_session_reporting_two_os_versions_refuses(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "junit.xml")
    first = '<property name="hil.os_version" value="1.2.0" />'
    path.write_text(path.read_text().replace(first, first + first.replace("1.2.0", "1.3.0")))
    assert (
        f"{path}: <testsuite name='pytest'> reports several values for hil.os_version: 1.2.0, 1.3.0"
        in decide(tmp_path).reasons
    )


def test_a_release_without_a_version_is_never_final(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", version=None)
    subject = Subject("7", "", ("qemux86-64",), {"qemux86-64": IMAGE_SHA256})
    assert "release 7 has no version to hold the results against" in decide(tmp_path, subject=subject).reasons


def test_a_policy_pinned_to_another_version_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "r" / "junit.xml")
    policy = with_policy(tmp_path, 'version: "1.3.0"\n' + DEFAULT_POLICY.read_text())
    decision = decide(tmp_path / "r", policy=policy)
    assert "the policy is for version 1.3.0, the release is version 1.2.0" in decision.reasons


# Skips: listed in allow_skips, or (issue 10) a feature the run's OS profile may lack.


def test_a_skip_refuses_unless_the_policy_lists_it(tmp_path: Path) -> None:
    suites = {**SUITES, "time_sync": [*SUITES["time_sync"], "test_rtc"]}
    write_junit(
        tmp_path / "s" / "junit.xml", suites=suites, outcomes={case_id("time_sync", "test_rtc"): "skipped"}
    )
    assert cell(decide(tmp_path / "s", suites=suites), "time_sync").state == CELL_FAILED
    policy = with_policy(
        tmp_path,
        DEFAULT_POLICY.read_text().replace(
            "      time_sync:\n        min_tests: 3\n",
            "      time_sync:\n        min_tests: 3\n        allow_skips: [test_rtc]\n",
        ),
    )
    allowed = decide(tmp_path / "s", policy=policy, suites=suites)
    assert allowed.verdict == FINAL, allowed.reasons
    assert cell(allowed, "time_sync").skipped == 1


def test_skips_do_not_count_towards_the_minimum(tmp_path: Path) -> None:
    policy = with_policy(
        tmp_path,
        "device_types:\n  qemux86-64:\n    suites:\n      boot: {min_tests: 5, allow_skips: ['*']}\n",
    )
    write_junit(
        tmp_path / "r" / "junit.xml", outcomes={case_id("boot", n): "skipped" for n in SUITES["boot"]}
    )
    assert cell(decide(tmp_path / "r", policy=policy), "boot").state == CELL_TOO_FEW


def _generic_run(tmp_path: Path, **kwargs) -> Path:
    """A generic OS: no A/B updates, so every hostapp_update test skips naming ab-update."""
    lacking = {case_id("hostapp_update", n): "ab-update" for n in SUITES["hostapp_update"]}
    outcomes = dict.fromkeys(lacking, "skipped")
    lacking[case_id("time_sync", "test_clock_persists_across_reboot")] = "persisted-clock"
    outcomes[case_id("time_sync", "test_clock_persists_across_reboot")] = "skipped"
    time_sync = [*SUITES["time_sync"], "test_fourth"]
    return write_junit(
        tmp_path / "junit.xml", os_profile="generic", device_type_source="asserted", missing=lacking,
        outcomes=outcomes, suites={**SUITES, "time_sync": time_sync}, **kwargs,
    )  # fmt: skip


GENERIC_SUITES = {**SUITES, "time_sync": [*SUITES["time_sync"], "test_fourth"]}


def test_a_generic_os_skipping_features_it_may_lack_is_final_with_not_applicable_cells(
    tmp_path: Path,
) -> None:
    path = _generic_run(tmp_path)
    decision = decide(tmp_path, suites=GENERIC_SUITES)
    assert decision.verdict == FINAL, decision.reasons
    assert cell(decision, "hostapp_update").state == CELL_NOT_APPLICABLE
    assert cell(decision, "hostapp_update").passed == 0
    assert cell(decision, "time_sync").state == CELL_PASSED
    assert any(
        "hostapp_update: not applicable" in n and "generic lacks ab-update" in n for n in decision.notes
    )
    assert (
        f"{path}: the device type qemux86-64 was asserted by the user, not read from the image"
        in " ".join(decision.notes)
    )


def test_min_tests_counts_among_the_tests_that_apply_to_the_os(tmp_path: Path) -> None:
    # time_sync has 4 tests; a generic OS lacks two of them: 2 passes meet min_tests 3 among the 2 that apply.
    lacking = {case_id("time_sync", n): "persisted-clock" for n in GENERIC_SUITES["time_sync"][:2]}
    hostapp = {case_id("hostapp_update", n): "ab-update" for n in SUITES["hostapp_update"]}
    write_junit(
        tmp_path / "junit.xml", os_profile="generic", suites=GENERIC_SUITES, missing={**lacking, **hostapp},
        outcomes=dict.fromkeys([*lacking, *hostapp], "skipped"),
    )  # fmt: skip
    decision = decide(tmp_path, suites=GENERIC_SUITES)
    assert decision.verdict == FINAL, decision.reasons
    assert cell(decision, "time_sync").passed == 2
    assert any("time_sync: 2 of the 2 test(s) that apply passed" in n for n in decision.notes)
    # One of those two failing to apply for an undeclared reason still refuses, whatever the count.
    fourth = case_id("time_sync", GENERIC_SUITES["time_sync"][2])
    write_junit(
        tmp_path / "junit.xml", os_profile="generic", suites=GENERIC_SUITES, missing={**lacking, **hostapp},
        outcomes={**dict.fromkeys([*lacking, *hostapp], "skipped"), fourth: "skipped"},
    )  # fmt: skip
    assert decide(tmp_path, suites=GENERIC_SUITES).verdict == REFUSED


def test_the_same_skips_refuse_for_a_profile_that_declares_nothing(tmp_path: Path) -> None:
    _generic_run(tmp_path, properties={"hil.os_profile": "reference"})
    decision = decide(tmp_path, suites=GENERIC_SUITES)
    assert decision.verdict == REFUSED
    assert cell(decision, "hostapp_update").state == CELL_FAILED


def test_a_skip_for_a_feature_the_profile_may_not_lack_refuses(tmp_path: Path) -> None:
    dns = case_id("networking", "test_resolves_names")
    write_junit(
        tmp_path / "junit.xml", os_profile="generic", missing={dns: "rig-dns"}, outcomes={dns: "skipped"}
    )
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert any(dns in r and "was skipped, which the policy does not allow" in r for r in decision.reasons)


def test_a_generic_suite_that_did_not_run_at_all_is_missing_not_applicable(tmp_path: Path) -> None:
    generic = {k: v for k, v in GENERIC_SUITES.items() if k != "hostapp_update"}
    write_junit(tmp_path / "junit.xml", os_profile="generic", suites=generic)
    assert cell(decide(tmp_path, suites=GENERIC_SUITES), "hostapp_update").state == CELL_MISSING


def test_a_release_whose_every_suite_is_not_applicable_refuses(tmp_path: Path) -> None:
    policy = with_policy(tmp_path, DEFAULT_POLICY.read_text().split("\ndevice_types:")[0] + """
device_types:
  qemux86-64:
    suites:
      hostapp_update: {min_tests: 3}
""" + "os_profiles:" + DEFAULT_POLICY.read_text().split("os_profiles:")[1])  # fmt: skip
    only = {"hostapp_update": SUITES["hostapp_update"]}
    lacking = {case_id("hostapp_update", n): "ab-update" for n in SUITES["hostapp_update"]}
    write_junit(tmp_path / "r" / "junit.xml", suites=only, os_profile="generic", missing=lacking,
                outcomes=dict.fromkeys(lacking, "skipped"))  # fmt: skip
    decision = decide(tmp_path / "r", policy=policy, suites=only)
    assert decision.verdict == REFUSED
    assert "qemux86-64: every suite is not applicable, so nothing shows the image works" in decision.reasons


def test_suites_run_under_different_os_profiles_refuse(tmp_path: Path) -> None:
    """Else a suite could be run under a profile that lacks what the image has, to make it not applicable."""
    for suite, names in SUITES.items():
        write_junit(
            tmp_path / f"{suite}.xml",
            suites={suite: names},
            os_profile="generic" if suite == "boot" else "reference",
        )
    assert refused_with(
        decide(tmp_path),
        "qemux86-64: the results come from runs under different OS profiles (generic, reference)",
    )
