"""A user's own suite, in a directory outside this repository, gets exactly what hil's suites get: the
public fixtures, the capability and OS-feature markers, and HilErrors turned into one-line failures.

The rig's board is the fake board (tests/support/fakes/board.py: a getty and a real shell behind a socket), so
these run in seconds; the QEMU end-to-end tests prove the same fixtures on real boots.
"""

from __future__ import annotations

import json
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.disk_images import make_disk

ROOT = Path(__file__).resolve().parents[2]

FAKE_BOARD_CONFTEST = """
from hil.dut.boards import BOARD_KINDS, BoardKind
from tests.support.fakes.board import FakeBoard

# The hardware is the only thing faked: every fixture and hook below is hil's plugin, as installed.
def _fake(rig, profile, artifacts):
    return FakeBoard(artifacts / "b", password="pw")


BOARD_KINDS["qemu"] = BoardKind(lambda rig: None, lambda: FakeBoard, _fake)
"""

USER_SUITE = """
import pytest

from hil.capabilities import LinkControl
from hil.errors import HilError


def test_the_console_answers(console_dut):
    assert console_dut.console_run("echo ok").output.strip() == "ok"


def test_reflash_with_extra_config(reflash_dut, hil_dut):
    dut = reflash_dut({"myFeature": {"on": True}}, boot=False)
    assert dut.config["myFeature"] == {"on": True}


@pytest.mark.requires("wifi")
def test_needs_a_wifi_rig(rig):
    pass


@pytest.mark.requires_os("ab-update")
def test_needs_ab_updates(rig):
    pass


def test_asks_for_a_capability_inside(console_dut):
    console_dut.require(LinkControl)


def test_a_hil_error_is_a_one_line_diagnosis(console_dut):
    raise HilError("the widget on the bench is unplugged")


def test_a_plain_assertion_still_fails(console_dut):
    assert console_dut.console_run("echo 1").output.strip() == "2"
"""


@pytest.fixture
def user_suite(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[str]]:
    """A suite and a rig outside the repository; yields the pytest arguments that run it."""
    pytester.makeconftest(FAKE_BOARD_CONFTEST)
    pytester.makepyfile(test_my_os=USER_SUITE)
    rig = pytester.path / "bench.yaml"
    rig.write_text(
        "kind: qemu\ndevice_type: qemux86-64\nos: generic\ncredentials:\n  password_env: BENCH_PW\n"
        "timeouts:\n  boot: 20\n  ssh: 1\n  command: 10\n  shutdown: 1\n"
    )
    image = make_disk(tmp_path / "my-os.img", boot_files={"EFI.txt": b"no device type here"})
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCH_PW", "pw")
    junit = pytester.path / "junit.xml"
    # Not under tmp_path: the fake console is a Unix socket in there, and its path must stay short.
    with tempfile.TemporaryDirectory(prefix="hil-api-") as artifacts:
        yield [
            *("--rig", str(rig), "--image", str(image), "--device-type", "qemux86-64"),
            *("--hil-artifacts", artifacts, f"--junitxml={junit}", "-o", "junit_family=xunit1", "-rs"),
        ]


def _cases(junit: Path) -> dict[str, tuple[str, dict[str, str], str]]:
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        text = next((c.get("message", "") for c in case if c.tag in ("failure", "error", "skipped")), "")
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        cases[case.get("name", "")] = (outcome, props, text)
    return cases


def test_a_users_suite_outside_the_repository_passes_skips_and_fails_as_it_should(
    pytester: pytest.Pytester, user_suite: list[str]
) -> None:
    result = pytester.runpytest_subprocess(*user_suite, timeout=300)
    result.assert_outcomes(passed=2, skipped=3, failed=2)
    cases = _cases(pytester.path / "junit.xml")
    assert cases["test_needs_a_wifi_rig"][1]["hil.missing_capability"] == "wifi"
    assert cases["test_needs_ab_updates"][1]["hil.missing_feature"] == "ab-update"
    assert "OS profile 'generic' does not have A/B root partitions" in cases["test_needs_ab_updates"][2]
    assert cases["test_asks_for_a_capability_inside"][1]["hil.missing_capability"] == "link-control"
    outcome, _, message = cases["test_a_hil_error_is_a_one_line_diagnosis"]
    assert (outcome, message) == ("failure", "Failed: HilError: the widget on the bench is unplugged")
    assert cases["test_a_plain_assertion_still_fails"][0] == "failure"
    booted = cases["test_the_console_answers"][1]  # the boot its fixture made, phase by phase
    assert {"firmware", "login"} <= set(json.loads(booted["hil.boots"])[0])
    assert float(booted["hil.boot_phase.login"]) >= 0
    assert "hil.boots" not in cases["test_a_plain_assertion_still_fails"][1]  # the DUT was up already
    suite_props = {
        p.get("name"): p.get("value")
        for p in ET.parse(pytester.path / "junit.xml").getroot().iter("property")
    }
    assert suite_props["hil.os_profile"] == "generic"
    assert suite_props["hil.device_type_source"] == "asserted"
    # A failing test leaves what the DUT logged: dmesg, and the profile's boot log (the journal here).
    evidence = Path(user_suite[user_suite.index("--hil-artifacts") + 1]) / "bench"
    failed = evidence / "test_a_plain_assertion_still_fails"
    assert sorted(f.name for f in failed.iterdir()) == ["boot-log.txt", "dmesg.txt"]
    assert (
        "pw"
        not in (
            Path(user_suite[user_suite.index("--hil-artifacts") + 1]) / "bench" / "console.log"
        ).read_text()
    )


def test_a_misspelt_capability_marker_is_a_usage_error_not_a_silent_skip(
    pytester: pytest.Pytester, user_suite: list[str]
) -> None:
    pytester.makepyfile(
        test_typo="import pytest\n\n@pytest.mark.requires('link-contrl')\ndef test_x(rig):\n    pass\n"
    )
    result = pytester.runpytest_subprocess(*user_suite, "test_typo.py", timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*requires('link-contrl'): unknown capability; known: *link-control*"])


def test_a_rig_that_gives_hil_no_way_in_is_refused_before_anything_runs(
    pytester: pytest.Pytester, user_suite: list[str], tmp_path: Path
) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text("kind: qemu\ndevice_type: qemux86-64\nos: generic\n")
    args = list(user_suite)
    args[args.index("--rig") + 1] = str(bare)
    result = pytester.runpytest_subprocess(*args, timeout=120)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*rig bare: OS profile 'generic' gives hil no way in*"])
