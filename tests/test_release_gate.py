"""The gate's decision from result files: final only on complete, passing evidence for the right version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from release_samples import SUITES, case_id, write_allure, write_junit

from hil.release.gate import CELL_FAILED, CELL_MISSING, CELL_PASSED, CELL_TOO_FEW, FINAL, REFUSED, evaluate
from hil.release.policy import DEFAULT_POLICY, load_policy
from hil.release.results import read_results


def decide(*dirs: Path, version: str = "1.2.0", device_types: tuple[str, ...] = ("qemux86-64",)):
    return evaluate(
        load_policy(DEFAULT_POLICY),
        read_results(list(dirs)),
        release_id="7",
        version=version,
        device_types=list(device_types),
    )


def cell(decision, suite: str, device_type: str = "qemux86-64"):
    return next(c for c in decision.cells if (c.device_type, c.suite) == (device_type, suite))


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
    policy = tmp_path / "gate.yaml"
    policy.write_text(
        "device_types:\n"
        "  qemux86-64:\n    suites:\n      boot: {min_tests: 5}\n"
        "  raspberrypi4-64:\n    suites:\n      boot: {min_tests: 5}\n"
    )
    decision = evaluate(
        load_policy(policy),
        read_results([tmp_path]),
        release_id="7",
        version="1.2.0",
        device_types=["qemux86-64", "raspberrypi4-64"],
    )
    assert decision.verdict == REFUSED
    assert cell(decision, "boot", "raspberrypi4-64").state == CELL_MISSING
    assert "raspberrypi4-64/boot: no results" in decision.reasons


def test_a_device_type_the_policy_does_not_name_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml")
    decision = decide(tmp_path, device_types=("qemux86-64", "genericx86-64-ext"))
    assert decision.verdict == REFUSED
    assert any("no rules for device type genericx86-64-ext" in r for r in decision.reasons)


def test_a_suite_with_fewer_tests_than_the_minimum_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", suites={**SUITES, "boot": SUITES["boot"][:3]})
    decision = decide(tmp_path)
    assert cell(decision, "boot").state == CELL_TOO_FEW
    assert "qemux86-64/boot: 3 test(s) passed, the policy needs at least 5" in decision.reasons


def test_a_missing_suite_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", suites={k: v for k, v in SUITES.items() if k != "time_sync"})
    decision = decide(tmp_path)
    assert cell(decision, "time_sync").state == CELL_MISSING
    assert decision.verdict == REFUSED


def test_results_for_a_different_version_refuse(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "junit.xml", version="1.1.9")
    decision = decide(tmp_path, version="1.2.0")
    assert decision.verdict == REFUSED
    assert f"{path}: 14 result(s) are for version 1.1.9, not 1.2.0" in decision.reasons
    # They are not counted either: the table shows nothing for 1.2.0.
    assert {c.state for c in decision.cells} == {CELL_MISSING}


def test_one_stray_file_for_another_version_refuses_an_otherwise_passing_set(tmp_path: Path) -> None:
    write_junit(tmp_path / "a.xml", version="1.2.0")
    write_junit(tmp_path / "b.xml", version="1.1.9", suites={"boot": SUITES["boot"][:1]})
    assert decide(tmp_path).verdict == REFUSED


def test_an_unparsable_file_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "good.xml")
    (tmp_path / "truncated.xml").write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest"')
    decision = decide(tmp_path)
    assert decision.verdict == REFUSED
    assert any("truncated.xml: not parsable as XML" in r for r in decision.reasons)


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


def test_a_junit_file_without_hil_properties_refuses(tmp_path: Path) -> None:
    (tmp_path / "plain.xml").write_text(
        '<testsuites><testsuite name="pytest" tests="1">'
        '<testcase classname="t" name="x"/></testsuite></testsuites>'
    )
    write_junit(tmp_path / "junit.xml")
    assert any("has no hil.device_type property" in r for r in decide(tmp_path).reasons)


def test_other_xml_in_an_artifacts_dir_is_not_evidence(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "domain.xml").write_text("<domain type='qemu'/>")
    decision = decide(tmp_path)
    assert decision.verdict == FINAL, decision.reasons
    assert any("domain.xml: ignored" in n for n in decision.notes)


def test_a_skip_refuses_unless_the_policy_lists_it(tmp_path: Path) -> None:
    skipped = case_id("time_sync", "test_offset_is_small")
    write_junit(
        tmp_path / "r" / "junit.xml", suites={**SUITES, "time_sync": [*SUITES["time_sync"], "test_rtc"]}
    )
    write_junit(
        tmp_path / "s" / "junit.xml",
        suites={**SUITES, "time_sync": [*SUITES["time_sync"], "test_rtc"]},
        outcomes={case_id("time_sync", "test_rtc"): "skipped"},
        started="2026-11-22T07:00:00+00:00",
    )
    assert cell(decide(tmp_path / "s"), "time_sync").state == CELL_FAILED
    policy = tmp_path / "gate.yaml"
    policy.write_text(
        DEFAULT_POLICY.read_text().replace(
            "      time_sync:\n        min_tests: 3\n",
            "      time_sync:\n        min_tests: 3\n        allow_skips: [test_rtc]\n",
        )
    )
    allowed = evaluate(
        load_policy(policy),
        read_results([tmp_path / "s"]),
        release_id="7",
        version="1.2.0",
        device_types=["qemux86-64"],
    )
    assert allowed.verdict == FINAL, allowed.reasons
    assert cell(allowed, "time_sync").skipped == 1
    assert skipped not in str(allowed.reasons)


def test_skips_do_not_count_towards_the_minimum(tmp_path: Path) -> None:
    outcomes = {case_id("boot", n): "skipped" for n in SUITES["boot"]}
    policy = tmp_path / "gate.yaml"
    policy.write_text(
        "device_types:\n  qemux86-64:\n    suites:\n      boot: {min_tests: 5, allow_skips: ['*']}\n"
    )
    write_junit(tmp_path / "r" / "junit.xml", outcomes=outcomes)
    decision = evaluate(
        load_policy(policy),
        read_results([tmp_path / "r"]),
        release_id="7",
        version="1.2.0",
        device_types=["qemux86-64"],
    )
    assert cell(decision, "boot").state == CELL_TOO_FEW


def test_a_retry_that_passed_later_wins_and_every_attempt_is_kept(tmp_path: Path) -> None:
    flaky = case_id("networking", "test_reaches_the_host")
    write_junit(
        tmp_path / "first.xml", run_id="r1", started="2026-11-22T06:00:00+00:00", outcomes={flaky: "failed"}
    )
    write_junit(tmp_path / "retry.xml", run_id="r2", started="2026-11-22T06:30:00+00:00")
    results = read_results([tmp_path])
    assert decide(tmp_path).verdict == FINAL
    attempts = [a for a in results.attempts if a.test == flaky]
    assert sorted(a.outcome for a in attempts) == ["failed", "passed"]


def test_a_retry_that_failed_later_wins_over_an_earlier_pass(tmp_path: Path) -> None:
    flaky = case_id("networking", "test_reaches_the_host")
    # File names sort the other way round, so only the start time can decide.
    write_junit(
        tmp_path / "a.xml", run_id="r2", started="2026-11-22T06:30:00+00:00", outcomes={flaky: "failed"}
    )
    write_junit(tmp_path / "b.xml", run_id="r1", started="2026-11-22T06:00:00+00:00")
    assert cell(decide(tmp_path), "networking").state == CELL_FAILED


def test_allure_results_alone_are_evidence(tmp_path: Path) -> None:
    write_allure(tmp_path / "allure-results")
    decision = decide(tmp_path)
    assert decision.verdict == FINAL, decision.reasons


def test_a_broken_allure_test_refuses(tmp_path: Path) -> None:
    write_allure(tmp_path / "allure-results", outcomes={case_id("boot", "test_ssh_answers"): "error"})
    assert cell(decide(tmp_path), "boot").state == CELL_FAILED


def test_junit_is_the_authority_when_a_run_left_both(tmp_path: Path) -> None:
    failing = case_id("boot", "test_ssh_answers")
    write_junit(tmp_path / "junit.xml", run_id="same-run")
    write_allure(tmp_path / "allure-results", run_id="same-run", outcomes={failing: "failed"})
    results = read_results([tmp_path])
    assert all(a.source.endswith(".xml") for a in results.attempts)
    assert decide(tmp_path).verdict == FINAL


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
    assert f"{path}: one session reports several OS versions: 1.2.0, 1.3.0" in decide(tmp_path).reasons


def test_allure_from_a_junit_run_lends_its_attachments_to_failing_tests(tmp_path: Path) -> None:
    failing = case_id("boot", "test_no_failed_units")
    write_junit(tmp_path / "junit.xml", run_id="run-7", outcomes={failing: "failed"})
    allure = write_allure(tmp_path / "allure-results", run_id="run-7", outcomes={failing: "failed"})
    # What the hil plugin writes: the run id, but not the device type, under keys without "hil.".
    (allure / "environment.properties").write_text("rig=qemu-1\nimage=reference\nrun_id=run-7\n")
    record_path = next(p for p in allure.glob("*-result.json") if "test_no_failed_units" in p.read_text())
    record = json.loads(record_path.read_text())
    record["attachments"] = [{"name": "dmesg", "source": "ab12-attachment.txt", "type": "text/plain"}]
    record_path.write_text(json.dumps(record))
    decision = decide(tmp_path)
    assert not [r for r in decision.reasons if "allure" in r]
    (failed,) = cell(decision, "boot").failing
    assert failed.artifacts == (str(allure / "ab12-attachment.txt"),)


def test_two_records_of_one_test_from_one_session_count_as_the_worse(tmp_path: Path) -> None:
    flaky = case_id("boot", "test_ssh_answers")
    write_junit(tmp_path / "a.xml", run_id="same", outcomes={flaky: "failed"})
    write_junit(tmp_path / "b.xml", run_id="same")
    assert cell(decide(tmp_path), "boot").state == CELL_FAILED


def test_a_start_time_that_cannot_be_ordered_refuses(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "junit.xml", started="yesterday")
    assert (
        f"{path}: start time 'yesterday' is not an ISO time; retries cannot be ordered"
        in decide(tmp_path).reasons
    )


def test_a_release_without_a_version_is_never_final(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", version=None)
    assert "release 7 has no version to hold the results against" in decide(tmp_path, version="").reasons


def test_a_policy_pinned_to_another_version_refuses(tmp_path: Path) -> None:
    write_junit(tmp_path / "r" / "junit.xml")
    policy = tmp_path / "gate.yaml"
    policy.write_text('version: "1.3.0"\n' + DEFAULT_POLICY.read_text())
    decision = evaluate(
        load_policy(policy),
        read_results([tmp_path / "r"]),
        release_id="7",
        version="1.2.0",
        device_types=["qemux86-64"],
    )
    assert "the policy is for version 1.3.0, the release is version 1.2.0" in decision.reasons
