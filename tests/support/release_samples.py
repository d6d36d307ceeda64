"""Result files shaped exactly as pytest and the hil plugin write them (JUnit xunit1, allure-results),
the installed suites they are complete against, and a release that names the image they are about."""

from __future__ import annotations

import hashlib
import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

from hil.release.catalog import Catalog
from hil.release.store import ReleaseImage
from hil.results.model import local_test_id

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
IMAGE_SHA256 = hashlib.sha256(b"the decompressed disk of hil 1.2.0").hexdigest()
OTHER_SHA256 = hashlib.sha256(b"some other disk").hexdigest()
IMAGE = ReleaseImage(sha256=IMAGE_SHA256, path="/cache/images/hil-1.2.0.img")


def case_id(suite: str, name: str) -> str:
    """The id the gate gives a test: classname::name."""
    return f"suites.{suite}.test_{suite}::{name}"


def catalog_of(suites: dict[str, list[str]] | None = None) -> Catalog:
    """The installed suites as hil's collection would list them."""
    suites = SUITES if suites is None else suites
    return Catalog(
        suites={
            s: frozenset(local_test_id(s, f"suites.{s}.test_{s}", n) for n in names)
            for s, names in suites.items()
        },
        source="tests/support/release_samples.py",
    )


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
    image_sha256: str = IMAGE_SHA256,
    exitstatus: int | None = None,
    os_profile: str = "reference",
    device_type_source: str = "image",
    missing: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
    messages: dict[str, str] | None = None,
) -> Path:
    """One pytest session's JUnit file, as `pytest --junitxml -o junit_family=xunit1` writes it.

    `outcomes` maps test ids to failed/error/skipped/xfail (default passed); `messages` a failed or errored
    test to its failure message; `missing` maps a skipped test to the OS feature it lacked
    (hil.missing_feature); `exitstatus` defaults to what pytest would say.
    """
    messages = messages or {}
    outcomes, artifacts, missing = outcomes or {}, artifacts or {}, missing or {}
    suites = SUITES if suites is None else suites
    cases = [(suite, name) for suite, names in suites.items() for name in names]
    said = [outcomes.get(case_id(*c), "passed") for c in cases]
    failing = any(o in ("failed", "error") for o in said)
    root = ET.Element("testsuites", name="pytest tests")
    testsuite = ET.SubElement(
        root,
        "testsuite",
        name="pytest",
        errors=str(said.count("error")),
        failures=str(said.count("failed")),
        skipped=str(said.count("skipped") + said.count("xfail")),
        tests=str(len(cases)),
        time="41.2",
        timestamp=started,
        hostname="ci-agent-1",
    )
    props = ET.SubElement(testsuite, "properties")
    for name, value in {
        "hil.rig": f"{device_type}-1",
        "hil.device_type": device_type,
        "hil.device_type_source": device_type_source,
        "hil.os_profile": os_profile,
        "hil.image": f"/cache/images/hil-{version}.img",
        "hil.image_sha256": image_sha256,
        "hil.os_version": version,
        "hil.run_id": run_id or uuid.uuid4().hex,
        "hil.started": started,
        "hil.exitstatus": str(int(failing) if exitstatus is None else exitstatus),
        **(properties or {}),
    }.items():
        if value is not None:  # no version: the DUT never booted far enough to report one
            ET.SubElement(props, "property", name=name, value=value)
    for (suite, name), outcome in zip(cases, said, strict=True):
        tid = case_id(suite, name)
        case = ET.SubElement(
            testsuite, "testcase", classname=tid.split("::")[0], name=name, file=f"suites/{suite}/x.py",
            line="7", time="1.500",
        )  # fmt: skip
        case_props = ET.SubElement(case, "properties")
        ET.SubElement(case_props, "property", name="hil.suite", value=suite)
        if tid in missing:
            ET.SubElement(case_props, "property", name="hil.missing_feature", value=missing[tid])
        if outcome == "failed":
            said = messages.get(tid, "AssertionError: assert 1 == 0")
            failure = ET.SubElement(case, "failure", message=said)
            failure.text = "def test():\n>   assert 1 == 0\nE   AssertionError"
        elif outcome == "error":
            said = messages.get(tid, 'failed on setup with "BootTimeout: no login prompt"')
            ET.SubElement(case, "error", message=said)
        elif outcome == "skipped":
            reason = (
                f"OS profile {os_profile} does not {missing[tid]}"
                if tid in missing
                else "no RTC on this board"
            )
            ET.SubElement(case, "skipped", type="pytest.skip", message=reason).text = f"x.py:3: {reason}"
        elif outcome == "xfail":
            ET.SubElement(case, "skipped", type="pytest.xfail", message="known bug")
        if tid in artifacts:
            ET.SubElement(case, "system-out").text = f"[[ATTACHMENT|{artifacts[tid]}]]"
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write_allure(
    directory: Path,
    *,
    run_id: str = "allure-run",
    outcomes: dict[str, str] | None = None,
    suites: dict[str, list[str]] | None = None,
) -> Path:
    """An allure-results dir for one session, with the run's facts in environment.properties as the hil
    plugin writes them."""
    outcomes = outcomes or {}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "environment.properties").write_text(f"rig=qemu-1\nimage=reference\nrun_id={run_id}\n")
    for suite, names in (SUITES if suites is None else suites).items():
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


def write_image(path: Path, *, device_type: str = "qemux86-64", version: str = "1.2.0") -> Path:
    """A small raw image whose sidecar names its device type and version, as a build would leave it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00" * 4096 + version.encode() + b"\x00" * 4096)
    path.with_name(path.name + ".json").write_text(json.dumps({"slug": device_type, "version": version}))
    return path
