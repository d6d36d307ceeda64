"""Runs recorded by real pytest sessions (hil's plugin, the fake board): what the store keeps, `hil runs`,
the gate judging recorded runs, flaky tests, and the gate's summary.html."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hil.runs.store import RunStore
from tests.support.fake_runs import GatedLab

FLAKY = "test_smoke::test_time_sync_is_flaky_here"


def test_a_session_records_its_facts_tests_reasons_boot_time_and_console_slices(lab: GatedLab) -> None:
    run = RunStore(lab.lab.store).get(lab.failing)
    assert (run.rig, run.device_type, run.os_version, run.os_profile, run.exitstatus) == (
        "bench", "qemux86-64", "1.0", "generic", 1
    )  # fmt: skip
    assert run.facts.device_type_source == "asserted"
    outcomes = {t.test: (t.outcome, t.message) for t in run.tests}
    assert outcomes[FLAKY] == ("failed", "Failed: chrony did not sync within the bound")
    assert outcomes["test_smoke::test_joins_the_wifi"] == (
        "skipped", "needs a rig with wifi; rig bench (qemu) has none"
    )  # fmt: skip
    first = run.tests[0]
    assert first.timings["hil.boot_seconds"] == 1.25 and run.boot_seconds == 1.25
    transcript, start, end = first.console_slice() or ("", 0, 0)
    assert "console-ok" in Path(transcript).read_bytes()[start:end].decode(errors="replace")
    assert Path(run.facts.allure).is_dir() and run.facts.transcripts == (transcript,)


def test_hil_runs_list_and_show_read_the_runs_back(lab: GatedLab) -> None:
    listing = lab.lab.hil("runs", "list")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[1].startswith(lab.failing) and lines[2].startswith(lab.passing)
    shown = lab.lab.hil("runs", "show", lab.failing).stdout
    assert re.search(rf"{re.escape(FLAKY)}\s+failed\s+[0-9.]+\s+Failed: chrony did not sync", shown)
    assert "OS version 1.0, profile generic" in shown and "boot 1.25 s" in shown
    missing = lab.lab.hil("runs", "show", "nosuchrun")
    assert missing.returncode == 1 and "run nosuchrun is not recorded" in missing.stderr


def test_the_gate_takes_recorded_runs_as_evidence_and_records_each_decision(lab: GatedLab) -> None:
    show = lab.lab.hil("release", "show", lab.release).stdout
    assert "status final" in show
    decisions = re.findall(r"decision \d+ \S+ by \S+: (.*)", show)
    assert decisions[0] == "finalized"
    assert decisions[1].startswith("not finalized (it was already final): qemux86-64/smoke: ")
    assert "test_time_sync_is_flaky_here failed" in decisions[1]


def test_the_gate_needs_some_evidence(lab: GatedLab) -> None:
    result = lab.lab.hil("release", "gate", lab.release, "--policy", str(lab.lab.policy))
    assert result.returncode == 1 and "give the evidence: --results DIR" in result.stderr


def test_a_test_that_passed_and_failed_on_one_image_is_flaky(lab: GatedLab) -> None:
    store = RunStore(lab.lab.store)
    flaky = store.flaky()
    assert [(t.suite, t.test, t.passed, t.failed) for t in flaky] == [("smoke", FLAKY, 1, 1)]
    history = store.history("smoke", FLAKY, "qemux86-64")
    assert [(r.run_id, t.outcome) for r, t in history] == [
        (lab.failing, "failed"),
        (lab.passing, "passed"),
    ]


def test_the_gate_summary_shows_every_test_and_the_boot_trend_in_one_self_contained_file(
    lab: GatedLab,
) -> None:
    page = (lab.reports[1] / "summary.html").read_text()
    rows = re.findall(
        r"<tr[^>]*>(<td>qemux86-64</td><td>smoke</td><td>" + re.escape(FLAKY) + r".*?)</tr>", page
    )
    assert [("<td>passed</td>" in r, "<td>failed</td>" in r) for r in rows] == [(True, False), (False, True)]
    assert "chrony did not sync within the bound" in rows[1] and ">console</a> (bytes " in rows[1]
    assert "needs a rig with wifi; rig bench (qemu) has none (rig lacks wifi)" in page
    assert "boot to console login 1.25 s" in page
    assert page.count("<svg") == 1 and "qemux86-64: boot time" in page
    # One file Jenkins can show: nothing fetched, no script, no CSS for its CSP to drop.
    assert not re.search(r"<script|<style|\sstyle=|https?://(?!www\.w3\.org/)", page)


def test_recording_refuses_junit_that_drops_the_per_test_properties(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", "--hil-store",
         str(tmp_path / "s.sqlite"), "-o", "junit_family=xunit2", "-c", "/dev/null", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "recording a run needs JUnit in the xunit1 family" in done.stderr
