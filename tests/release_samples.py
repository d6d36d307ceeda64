"""Result files shaped like the hil plugin writes them (pytest --junitxml xunit2, allure-results)."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

# What a complete, passing run on qemux86-64 looks like against the default gate.yaml.
SUITES: dict[str, list[str]] = {
    "boot": [
        "test_reaches_login_prompt",
        "test_boots_from_active_slot",
        "test_kernel_cmdline_names_root",
        "test_no_failed_units",
        "test_ssh_answers",
    ],
    "networking": ["test_has_default_route", "test_resolves_names", "test_reaches_the_host"],
    "time_sync": ["test_chrony_syncs_to_host", "test_clock_persists_across_reboot", "test_offset_is_small"],
    "hostapp_update": ["test_updates_to_next", "test_rolls_back_a_broken_root", "test_state_survives_update"],
}


def case_id(suite: str, name: str) -> str:
    """The id the gate gives a test: classname::name."""
    return f"suites.{suite}.test_{suite}::{name}"


def write_junit(
    path: Path,
    *,
    device_type: str = "qemux86-64",
    version: str | None = "1.2.0",
    run_id: str | None = None,
    started: str = "2026-11-22T06:00:00+00:00",
    suites: dict[str, list[str]] | None = None,
    outcomes: dict[str, str] | None = None,
    artifacts: dict[str, str] | None = None,
) -> Path:
    """One pytest session's JUnit file; `outcomes` maps test ids to failed/error/skipped (default passed)."""
    outcomes, artifacts = outcomes or {}, artifacts or {}
    suites = SUITES if suites is None else suites
    cases = [(suite, name) for suite, names in suites.items() for name in names]
    counts = {k: sum(outcomes.get(case_id(*c)) == k for c in cases) for k in ("failed", "error", "skipped")}
    root = ET.Element("testsuites")
    testsuite = ET.SubElement(
        root,
        "testsuite",
        name="pytest",
        errors=str(counts["error"]),
        failures=str(counts["failed"]),
        skipped=str(counts["skipped"]),
        tests=str(len(cases)),
        time="41.2",
        timestamp=started.removesuffix("+00:00"),
        hostname="ci-agent-1",
    )
    props = ET.SubElement(testsuite, "properties")
    for name, value in (
        ("hil.rig", f"{device_type}-1"),
        ("hil.device_type", device_type),
        ("hil.image", f"/cache/images/hil-{version}.img"),
        ("hil.os_version", version),
        ("hil.run_id", run_id or uuid.uuid4().hex),
        ("hil.started", started),
    ):
        if value is not None:  # no version: the DUT never booted far enough to report one
            ET.SubElement(props, "property", name=name, value=value)
    for suite, name in cases:
        tid = case_id(suite, name)
        case = ET.SubElement(testsuite, "testcase", classname=tid.split("::")[0], name=name, time="1.5")
        case_props = ET.SubElement(case, "properties")
        ET.SubElement(case_props, "property", name="hil.suite", value=suite)
        outcome = outcomes.get(tid, "passed")
        if outcome == "failed":
            failure = ET.SubElement(case, "failure", message="AssertionError: assert 1 == 0")
            failure.text = "def test():\n>   assert 1 == 0\nE   AssertionError"
        elif outcome == "error":
            ET.SubElement(case, "error", message="failed on setup with BootTimeout: no login prompt")
        elif outcome == "skipped":
            ET.SubElement(case, "skipped", type="pytest.skip", message="no RTC on this board")
        if tid in artifacts:
            ET.SubElement(case, "system-out").text = f"[[ATTACHMENT|{artifacts[tid]}]]"
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_allure(
    directory: Path,
    *,
    device_type: str = "qemux86-64",
    version: str = "1.2.0",
    run_id: str = "allure-run",
    outcomes: dict[str, str] | None = None,
) -> Path:
    """An allure-results dir for one session, with the run's facts in environment.properties."""
    outcomes = outcomes or {}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "environment.properties").write_text(
        f"hil.device_type={device_type}\nhil.os_version={version}\nhil.run_id={run_id}\n"
        "hil.started=2026-11-22T05:00:00+00:00\n"
    )
    for suite, names in SUITES.items():
        for name in names:
            tid = case_id(suite, name)
            status = {"error": "broken"}.get(outcomes.get(tid, "passed"), outcomes.get(tid, "passed"))
            record = {
                "uuid": uuid.uuid4().hex,
                "name": name,
                "fullName": f"{tid.split('::')[0]}#{name}",
                "status": status,
                "start": 1795327200000,
                "stop": 1795327201500,
                "labels": [
                    {"name": "suite", "value": f"test_{suite}"},
                    {"name": "framework", "value": "pytest"},
                ],
                "parameters": [],
            }
            (directory / f"{record['uuid']}-result.json").write_text(json.dumps(record))
    return directory
