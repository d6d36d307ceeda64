"""End to end on a real QEMU board: the hostapp_update suite passes on the reference image, every one of its
tests ran but the one its updater has no feature for (bundle signatures), it updated from the version
before to the image under test, and no QEMU or temporary disk outlives it.
One inner run: the suite reboots a dozen times and costs minutes under TCG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.e2e import HOSTAPP_UPDATE_TESTS, leftover_disks, qemu_pids, reference_disk, run_suites

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

# hil's reference updater checks bundles by checksum, not signature: this test skips, naming the feature.
SKIPPED = {"test_bundle_that_does_not_fit_is_refused_and_changes_nothing[other-key]": "bundle-signatures"}


@pytest.mark.timeout(1800)
def test_hostapp_update_suite_passes_on_the_reference_image(tmp_path: Path) -> None:
    disk = reference_disk()
    out, junit = run_suites(tmp_path, "qemu-x86_64", disk, "suites/hostapp_update", timeout=1700)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    assert {case.get("name") for case in cases} == HOSTAPP_UPDATE_TESTS
    skipped = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}.get(
            "hil.missing_feature"
        )
        for case in cases
        if case.find("skipped") is not None
    }
    assert skipped == SKIPPED
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["hil.os_version"] == "1.0.0"
    assert "-0.0.0-healthy.img" in props["hil.update_base"]
    assert props["hil.suite"] == "hostapp_update"
    assert qemu_pids(tmp_path) == []
    assert leftover_disks(tmp_path) == []
