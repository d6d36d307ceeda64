"""Adversarial result files, generated: every one is a complete passing run damaged in one to three ways
(malformed, inconsistent, about another image or version, interrupted, forged), and none of them may ever
finalize. Arbitrary bytes never crash the reader."""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.release.gate import evaluate
from hil.release.policy import DEFAULT_POLICY, load_policy
from hil.release.sessions import Subject
from hil.results.read import read_results
from tests.support.release_samples import (
    IMAGE_SHA256,
    OTHER_SHA256,
    SUITES,
    catalog_of,
    write_allure,
    write_junit,
)

POLICY = load_policy(DEFAULT_POLICY)
SUBJECT = Subject("1", "1.2.0", ("qemux86-64",), {"qemux86-64": IMAGE_SHA256})
KNOWN_TAGS = {"testsuites", "testsuite", "testcase", "properties", "property", "failure", "error", "skipped",
              "system-out", "system-err"}  # fmt: skip
KNOWN_ATTRIBUTES = {"name", "value", "errors", "failures", "skipped", "tests", "time", "timestamp",
                    "hostname", "classname", "file", "line", "url", "message", "type"}  # fmt: skip
SINGLE = ["hil.device_type", "hil.device_type_source", "hil.image_sha256", "hil.run_id", "hil.exitstatus",
          "hil.os_version", "hil.started", "hil.os_profile"]  # fmt: skip
REQUIRED = ["hil.device_type", "hil.device_type_source", "hil.image_sha256", "hil.run_id", "hil.exitstatus",
            "hil.os_version"]  # fmt: skip
DAMAGES = [
    "counter", "drop_case", "drop_case_recounted", "unknown_element", "unknown_attribute", "case_outside",
    "nested_suite", "fail_a_case", "fail_a_case_recounted", "image", "drop_property", "conflicting_property",
    "exitstatus", "future", "version", "text", "rename_case", "undeclared_skip",
    "device_type", "duplicate_failing_case", "allure_contradiction",
]  # fmt: skip
# Damages to the bytes of the file: applied last, one at most, as nothing can be edited after them.
LAST = ["doctype", "truncate", "namespace", "empty"]
tags = st.from_regex(r"[a-z][a-z-]{2,9}", fullmatch=True).filter(lambda t: t not in KNOWN_TAGS)
attributes = st.from_regex(r"[a-z][a-z_]{2,9}", fullmatch=True).filter(lambda a: a not in KNOWN_ATTRIBUTES)


def recount(suite: ET.Element) -> None:
    """Counters as pytest would write them for these testcases (no double failures in the samples)."""
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for counter, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        suite.set(counter, str(sum(c.find(tag) is not None for c in cases)))


def prop(root: ET.Element, name: str) -> ET.Element:
    """The testsuite property `name` (added back, empty, if an earlier damage removed it)."""
    props = root.find("testsuite/properties")
    found = next((p for p in props if p.get("name") == name), None)
    return found if found is not None else ET.SubElement(props, "property", name=name, value="")


def damage(draw, name: str, path: Path, directory: Path) -> None:
    """Apply one named damage to the JUnit file at `path` (or beside it)."""
    if name == "allure_contradiction":
        run_id = prop(ET.parse(path).getroot(), "hil.run_id").get("value")
        suite = draw(st.sampled_from(sorted(SUITES)))
        test = f"suites.{suite}.test_{suite}::{draw(st.sampled_from(SUITES[suite]))}"
        outcome = draw(st.sampled_from(["failed", "error", "skipped"]))
        write_allure(directory / "allure-results", run_id=run_id, outcomes={test: outcome})
        return
    data = path.read_bytes()
    if name == "doctype":
        body = data.split(b"?>", 1)[1]
        path.write_bytes(b'<?xml version="1.0"?><!DOCTYPE testsuites [<!ENTITY x "y">]>' + body)
        return
    if name == "truncate":
        end = data.rindex(b"</testsuites>")
        path.write_bytes(data[: draw(st.integers(0, end))])
        return
    if name == "empty":
        path.write_bytes(b"")
        return
    if name == "namespace":
        path.write_bytes(data.replace(b"<testsuites ", b'<testsuites xmlns="urn:junit" ', 1))
        return
    tree = ET.ElementTree(ET.fromstring(data))
    root = tree.getroot()
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    case = draw(st.sampled_from(cases))
    if name == "counter":
        counter = draw(st.sampled_from(["errors", "failures", "skipped", "tests"]))
        text = suite.get(counter, "").strip()  # an earlier damage may have left it unreadable already
        now = int(text) if text.isascii() and text.isdigit() else 0
        suite.set(counter, draw(st.sampled_from([str(now + 1), str(now + 5), f"{now}²", "٣", f" {now}", ""])))
    elif name in ("drop_case", "drop_case_recounted"):
        suite.remove(case)
    elif name == "unknown_element":
        parent = draw(st.sampled_from([root, suite, case, suite.find("properties"), case.find("properties")]))
        ET.SubElement(parent, draw(tags))
    elif name == "unknown_attribute":
        target = draw(st.sampled_from([root, suite, case, prop(root, "hil.run_id")]))
        target.set(draw(attributes), "x")
    elif name == "case_outside":
        suite.remove(case)
        root.append(case)
    elif name == "nested_suite":
        inner = ET.SubElement(
            suite, "testsuite", name="inner", errors="0", failures="0", skipped="0", tests="0"
        )
        inner.text = ""
    elif name in ("fail_a_case", "fail_a_case_recounted"):
        ET.SubElement(case, draw(st.sampled_from(["failure", "error"])), message="boom")
    elif name == "image":
        prop(root, "hil.image_sha256").set("value", OTHER_SHA256)
    elif name == "drop_property":
        props, field = suite.find("properties"), draw(st.sampled_from(REQUIRED))
        for gone in [p for p in props if p.get("name") == field]:  # every value it had
            props.remove(gone)
    elif name == "conflicting_property":
        field = draw(st.sampled_from(SINGLE))
        ET.SubElement(
            suite.find("properties"), "property", name=field, value=prop(root, field).get("value") + "x"
        )
    elif name == "exitstatus":
        prop(root, "hil.exitstatus").set(
            "value", draw(st.sampled_from(["2", "3", "4", "5", "", "-1", "0x0", "ok"]))
        )
    elif name == "future":
        prop(root, "hil.started").set("value", "2999-01-01T00:00:00+00:00")
    elif name == "version":
        prop(root, "hil.os_version").set("value", draw(st.sampled_from(["1.2.1", "", "1.2.0 "])))
    elif name == "text":
        draw(st.sampled_from([suite, root, case])).text = draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
    elif name == "rename_case":
        case.set("name", case.get("name") + draw(st.from_regex(r"[a-z0-9_]{1,6}", fullmatch=True)))
    elif name == "undeclared_skip":
        ET.SubElement(case.find("properties"), "property", name="hil.missing_feature", value="ab-update")
        ET.SubElement(case, "skipped", type="pytest.skip", message="OS profile reference does not ...")
        recount(suite)
    elif name == "device_type":
        prop(root, "hil.device_type").set("value", "raspberrypi4-64")
    elif name == "duplicate_failing_case":
        copy = ET.fromstring(ET.tostring(case))
        ET.SubElement(copy, "failure", message="boom")
        suite.append(copy)
        recount(suite)
    if name.endswith("_recounted"):
        recount(suite)
    tree.write(path, encoding="utf-8", xml_declaration=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_damaged_result_set_ever_finalizes(data) -> None:
    names = data.draw(st.lists(st.sampled_from(DAMAGES), max_size=2))
    names += data.draw(st.sampled_from([[]] * 3 + [[last] for last in LAST]))
    if not names:
        names = [data.draw(st.sampled_from(DAMAGES))]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = write_junit(directory / "junit.xml")
        for name in names:
            damage(data.draw, name, path, directory)
        decision = evaluate(POLICY, read_results([directory]), SUBJECT, catalog_of())
    assert not decision.passed, names
    assert decision.reasons, names


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=2000), position=st.integers(0, 10_000))
def test_arbitrary_bytes_in_a_report_never_crash_the_reader(junk: bytes, position: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_junit(Path(tmp) / "junit.xml")
        data = path.read_bytes()
        at = position % (len(data) + 1)
        path.write_bytes(data[:at] + junk + data[at + len(junk) :])
        results = read_results([Path(tmp)])
        evaluate(POLICY, results, SUBJECT, catalog_of())


def test_an_xml_declaration_naming_an_unknown_encoding_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    # Found by the property test above: expat raised LookupError, which escaped the reader.
    (tmp_path / "junit.xml").write_bytes(b"<?xml version='1.0' encoding='u-f-8'?>\n<testsuites/>")
    results = read_results([tmp_path])
    assert any("unknown encoding" in problem for problem in results.problems), results.problems
