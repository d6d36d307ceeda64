"""The JUnit reader fails closed: what pytest writes reads correctly; anything else is refused naming the
file and the part it does not understand, and a file it refuses contributes no results."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.results.model import ERROR, FAILED, PASSED, SKIPPED
from hil.results.read import read_results
from tests.support.release_samples import IMAGE_SHA256, case_id, write_junit

ROOT = Path(__file__).resolve().parents[2]


def refusal(path: Path) -> str:
    results = read_results([path.parent])
    assert not results.attempts, "a refused file must contribute no results"
    (problem,) = [p for p in results.problems if p.startswith(str(path))]
    return problem


def edit(path: Path, change) -> Path:
    tree = ET.parse(path)
    change(tree.getroot())
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path


def test_counters_that_disagree_with_the_testcases_refuse(tmp_path: Path) -> None:
    path = edit(write_junit(tmp_path / "junit.xml"), lambda root: root.find("testsuite").set("failures", "4"))
    assert refusal(path).endswith(
        """<testsuite name='pytest'> says failures="4" but its testcases make it 0"""
    )


def test_a_removed_testcase_shows_in_the_counters(tmp_path: Path) -> None:
    def drop_failure(root: ET.Element) -> None:
        suite = root.find("testsuite")
        suite.remove(next(c for c in suite.iter("testcase") if c.find("failure") is not None))

    failing = case_id("boot", "test_ssh_answers")
    path = edit(write_junit(tmp_path / "junit.xml", outcomes={failing: "failed"}), drop_failure)
    assert 'says failures="1" but its testcases make it 0' in refusal(path)


def test_a_testcase_outside_any_testsuite_refuses(tmp_path: Path) -> None:
    def move_out(root: ET.Element) -> None:
        suite = root.find("testsuite")
        case = suite.find("testcase")
        ET.SubElement(case, "failure", message="boom")
        suite.remove(case)
        root.append(case)

    path = edit(write_junit(tmp_path / "junit.xml"), move_out)
    assert refusal(path).endswith("<testcase> inside <testsuites>; only <testsuite> belongs there")


def test_an_unknown_element_inside_a_testcase_refuses(tmp_path: Path) -> None:
    path = edit(
        write_junit(tmp_path / "junit.xml"),
        lambda root: ET.SubElement(root.find(".//testcase"), "rerunFailure"),
    )
    assert refusal(path).endswith("<rerunFailure> inside <testcase name='test_reaches_login_prompt'>")


def test_an_unknown_attribute_refuses(tmp_path: Path) -> None:
    path = edit(
        write_junit(tmp_path / "junit.xml"), lambda root: root.find(".//testcase").set("status", "passed")
    )
    assert "has an attribute pytest does not write: status" in refusal(path)


def test_a_result_element_with_children_refuses(tmp_path: Path) -> None:
    failing = case_id("boot", "test_ssh_answers")
    path = edit(
        write_junit(tmp_path / "junit.xml", outcomes={failing: "failed"}),
        lambda root: ET.SubElement(root.find(".//failure"), "details"),
    )
    assert "<failure> of <testcase name='test_ssh_answers'> holds elements" in refusal(path)


def test_text_outside_the_elements_refuses(tmp_path: Path) -> None:
    def add_text(root: ET.Element) -> None:
        root.find("testsuite").text = "all passed"

    assert "holds text outside its elements" in refusal(edit(write_junit(tmp_path / "junit.xml"), add_text))


def test_a_doctype_refuses_before_any_entity_expands(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "junit.xml")
    body = path.read_text().split("?>", 1)[1]
    laughs = '<!DOCTYPE testsuites [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    path.write_text(f'<?xml version="1.0"?>{laughs}{body}')
    assert "DOCTYPE" in refusal(path)


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("hil.exitstatus", "", "has no hil.exitstatus property"),
        ("hil.exitstatus", "ok", "hil.exitstatus 'ok' is not an exit status"),
        ("hil.exitstatus", "²", "hil.exitstatus '²' is not an exit status"),
        ("hil.image_sha256", "abc", "hil.image_sha256 'abc' is not a sha256"),
        ("hil.device_type_source", "guessed", "hil.device_type_source 'guessed' is not image or asserted"),
        ("hil.run_id", "", "has no hil.run_id property"),
        ("hil.device_type_source", "", "has no hil.device_type_source property"),
    ],
)
def test_a_session_fact_the_gate_needs_that_is_missing_or_malformed_refuses(
    tmp_path: Path, name: str, value: str, why: str
) -> None:
    path = write_junit(tmp_path / "junit.xml", properties={name: value})
    assert why in refusal(path)


def test_a_single_valued_property_stated_twice_differently_refuses(tmp_path: Path) -> None:
    def twice(root: ET.Element) -> None:
        props = root.find("testsuite/properties")
        ET.SubElement(props, "property", name="hil.image_sha256", value="0" * 64)

    path = edit(write_junit(tmp_path / "junit.xml"), twice)
    assert f"reports several values for hil.image_sha256: {'0' * 64}, {IMAGE_SHA256}" in refusal(path)


def test_a_pool_session_may_name_several_rigs(tmp_path: Path) -> None:
    def second_rig(root: ET.Element) -> None:
        ET.SubElement(root.find("testsuite/properties"), "property", name="hil.rig", value="qemu-x86_64#1")

    results = read_results([edit(write_junit(tmp_path / "junit.xml"), second_rig).parent])
    assert not results.problems
    assert results.sessions[0].rigs == ("qemu-x86_64#1", "qemux86-64-1")


# What pytest itself writes, read back: the reader must understand all of it.

SAMPLE = """
import pytest

@pytest.fixture(scope="session", autouse=True)
def facts(hil_suite_property):
    for name, value in {"hil.device_type": "qemux86-64", "hil.device_type_source": "image",
                        "hil.image_sha256": "IMAGE", "hil.run_id": "real", "hil.os_version": "1.2.0",
                        "hil.started": "2026-11-22T06:00:00+00:00", "hil.rig": "qemu"}.items():
        hil_suite_property(name, value)

@pytest.fixture
def breaks_on_teardown():
    yield
    raise RuntimeError("teardown boom")

@pytest.fixture
def breaks_on_setup():
    raise RuntimeError("setup boom")

def test_passes(record_property):
    record_property("hil.suite", "boot")
    print("[[ATTACHMENT|console.log]]")

def test_fails_then_errors_in_teardown(breaks_on_teardown):
    assert 0

def test_passes_then_errors_in_teardown(breaks_on_teardown):
    pass

def test_errors_in_setup(breaks_on_setup):
    pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert 0

@pytest.mark.xfail(reason="known")
def test_xpass():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_xpass_strict():
    pass

def test_skips():
    pytest.skip("no rtc")

@pytest.mark.skip(reason="marker")
def test_skipped_by_marker():
    pass

class TestGroup:
    @pytest.mark.parametrize("arg", ["x[1]", "y::z"])
    def test_param(self, arg):
        pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_what_pytest_writes_reads_correctly(tmp_path: Path, workers: list[str]) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE.replace("IMAGE", IMAGE_SHA256))
    junit = tmp_path / "out" / "junit.xml"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
               "-o", "junit_logging=all", f"--junitxml={junit}", *workers, "test_sample.py"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout[-2000:]
    results = read_results([junit.parent])
    assert results.problems == []
    (session,) = results.sessions
    assert session.exitstatus == 1  # written by hil's own hook, once, even under xdist
    worst = [PASSED, SKIPPED, FAILED, ERROR]
    outcome: dict[str, str] = {}
    for a in results.attempts:
        outcome[a.local] = max(outcome.get(a.local, PASSED), a.outcome, key=worst.index)
    assert outcome == {
        "test_sample::test_passes": PASSED,
        "test_sample::test_fails_then_errors_in_teardown": ERROR,
        "test_sample::test_passes_then_errors_in_teardown": ERROR,
        "test_sample::test_errors_in_setup": ERROR,
        "test_sample::test_xfail": SKIPPED,
        "test_sample::test_xpass": PASSED,
        "test_sample::test_xpass_strict": FAILED,
        "test_sample::test_skips": SKIPPED,
        "test_sample::test_skipped_by_marker": SKIPPED,
        "test_sample.TestGroup::test_param[x[1]]": PASSED,
        "test_sample.TestGroup::test_param[y::z]": PASSED,
    }
    passed = next(a for a in results.attempts if a.test.endswith("::test_passes"))
    assert passed.suite == "boot"
    assert passed.artifacts == (str(junit.parent / "console.log"),)
