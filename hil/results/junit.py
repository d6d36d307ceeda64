"""pytest's JUnit XML (xunit1), read strictly: the verdict comes from the testcases, and a file holding
anything pytest does not write (an unknown element or attribute, a testcase outside a testsuite, counters
that disagree with the testcases, a DOCTYPE) is unreadable evidence, refused naming the file and the part.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import xml.parsers.expat
from collections import Counter, defaultdict
from pathlib import Path

from hil.images.hash import SHA256
from hil.results.model import (
    ERROR,
    FAILED,
    MAX_JUNIT_BYTES,
    NEVER,
    PASSED,
    SEVERITY,
    SKIPPED,
    Attempt,
    Reader,
    RecordedJunit,
    ResultSet,
    Session,
    Unreadable,
    local_test_id,
    parse_time,
)

# What pytest's junitxml writes, and nothing else (see _pytest/junitxml.py).
_SUITES_ATTRS = {"name"}
_SUITE_ATTRS = {"name", "errors", "failures", "skipped", "tests", "time", "timestamp", "hostname"}
_COUNTERS = ("errors", "failures", "skipped", "tests")
_CASE_ATTRS = {"classname", "name", "file", "line", "url", "time"}
_RESULTS = {"error": ERROR, "failure": FAILED, "skipped": SKIPPED}
_SKIP_TYPES = {None, "pytest.skip", "pytest.xfail"}
_OUTPUTS = {"system-out", "system-err"}
_CHILD_ATTRS = {"failure": {"message"}, "error": {"message"}, "skipped": {"message", "type"}}
_TEARDOWN = 'failed on teardown with "'
_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses

_FLOAT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
# Testcase properties that are measurements, in seconds: hil.boot_seconds, hil.boot_seconds_cold, ...
_TIMING = "hil.boot_"
# The hil run plugin's record of where a test's console output is: PATH:START-END, PATH relative to
# the JUnit file's folder.
CONSOLE_PROPERTY = "hil.console"
_SPAN = re.compile(r"[0-9]{1,15}-[0-9]{1,15}")

# Jenkins' junit-attachments convention, also honoured in captured output.
_ATTACHMENT = re.compile(r"\[\[ATTACHMENT\|(.+?)\]\]")

# Testsuite properties that hold one value per session; hil.rig may hold several (one per pool board).
_SINGLE = (
    "hil.device_type", "hil.device_type_source", "hil.image", "hil.image_sha256", "hil.run_id", "hil.started",
    "hil.exitstatus", "hil.os_profile", "hil.update_base", "hil.update_base_sha256", "hil.update_bundle",
)  # fmt: skip
_DEVICE_TYPE_SOURCES = ("image", "asserted")
_CASE_SINGLE = ("hil.suite", "hil.missing_feature", "hil.missing_capability")
# What a session must state before its results count, and why.
_NEEDED = {
    "hil.device_type": "cannot tell what these results are for",
    "hil.run_id": "cannot tell which run these results are from",
    "hil.image_sha256": "cannot tell which image these results are about",
    "hil.exitstatus": "cannot tell how the pytest session ended",
    "hil.device_type_source": "cannot tell whether the device type was read from the image or asserted",
}


def read_junit(reader: Reader, path: Path) -> None:
    """Read one `*.xml` file: a JUnit report becomes sessions and attempts; other XML is noted and left."""
    try:
        root = parse_xml(reader.read(path, MAX_JUNIT_BYTES))
    except Unreadable as exc:
        reader.refuse(path, str(exc))
        return
    if root.tag not in ("testsuites", "testsuite"):
        # Artifacts dirs legitimately hold other XML (device trees, libvirt domains): not evidence.
        reader.results.files.pop(str(path), None)
        reader.results.notes.append(f"{path}: ignored, root element <{root.tag}> is not a JUnit report")
        return
    _read_report(reader.results, path, str(path), root)


def read_recorded_junit(reader: Reader, recorded: RecordedJunit) -> None:
    """Read a run's JUnit file as the run store kept it, exactly as the file itself would be read."""
    try:
        root = parse_xml(reader.take(recorded))
        if root.tag not in ("testsuites", "testsuite"):
            raise Unreadable(f"root element <{root.tag}> is not a JUnit report")
    except Unreadable as exc:
        reader.results.problems.append(f"{recorded.source}: {exc}")
        return
    _read_report(reader.results, recorded.path, recorded.source, root)


def _read_report(results: ResultSet, path: Path, source: str, root: ET.Element) -> None:
    """A JUnit report's sessions and attempts: artifacts named relative to `path`, problems by `source`."""
    try:
        read = [_suite(path, source, s) for s in _testsuites(root)]
    except Unreadable as exc:
        results.problems.append(f"{source}: not JUnit as pytest writes it: {exc}")
        return
    for session, attempts, problems in read:
        results.problems += [f"{source}: {p}" for p in problems]
        if session is not None:
            results.sessions.append(session)
            results.attempts += attempts


def parse_xml(data: bytes) -> ET.Element:
    """Parse a document that has no DOCTYPE: pytest never writes one, and entities could expand
    without bound or reach outside the file."""

    def refuse(*_: object) -> None:
        raise Unreadable("it has a DOCTYPE or entity declarations, which a JUnit report never holds")

    scan = xml.parsers.expat.ParserCreate()
    scan.StartDoctypeDeclHandler = refuse
    scan.EntityDeclHandler = refuse
    try:
        scan.Parse(data, True)
        return ET.fromstring(data)
    except (xml.parsers.expat.ExpatError, ET.ParseError) as exc:
        raise Unreadable(f"not parsable as XML ({exc})") from None
    except LookupError as exc:  # an XML declaration naming an encoding Python does not know
        raise Unreadable(f"not parsable as XML ({exc})") from None


def _testsuites(root: ET.Element) -> list[ET.Element]:
    if root.tag == "testsuite":
        return [root]
    _only(root, _SUITES_ATTRS, "<testsuites>")
    _no_text(root, "<testsuites>")
    for child in root:
        if child.tag != "testsuite":
            raise Unreadable(f"<{child.tag}> inside <testsuites>; only <testsuite> belongs there")
    if not len(root):
        raise Unreadable("<testsuites> holds no <testsuite>")
    return list(root)


def _only(element: ET.Element, allowed: set[str], where: str, required: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(element.attrib) - allowed)
    if unknown:
        raise Unreadable(f"{where} has an attribute pytest does not write: {unknown[0]}")
    missing = [a for a in required if a not in element.attrib]
    if missing:
        raise Unreadable(f"{where} lacks its {missing[0]} attribute")


def _no_text(element: ET.Element, where: str) -> None:
    if (element.text or "").strip() or any((c.tail or "").strip() for c in element):
        raise Unreadable(f"{where} holds text outside its elements")


def _properties(element: ET.Element, where: str) -> list[tuple[str, str]]:
    found = element.findall("properties")
    if len(found) > 1:
        raise Unreadable(f"{where} has {len(found)} <properties> elements")
    if not found:
        return []
    _only(found[0], set(), f"<properties> of {where}")
    _no_text(found[0], f"<properties> of {where}")
    pairs = []
    for prop in found[0]:
        if prop.tag != "property":
            raise Unreadable(f"<{prop.tag}> inside <properties> of {where}")
        _only(prop, {"name", "value"}, f"a <property> of {where}", ("name", "value"))
        if len(prop) or (prop.text or "").strip():
            raise Unreadable(f"<property name='{prop.get('name')}'> of {where} has content")
        pairs.append((prop.get("name", ""), prop.get("value", "")))
    return pairs


def _suite(path: Path, source: str, testsuite: ET.Element) -> tuple[Session | None, list[Attempt], list[str]]:
    where = f"<testsuite name='{testsuite.get('name', '')}'>"
    _only(testsuite, _SUITE_ATTRS, where, ("name", *_COUNTERS))
    _no_text(testsuite, where)
    for child in testsuite:
        if child.tag not in ("properties", "testcase"):
            raise Unreadable(f"<{child.tag}> inside {where}")
    cases = testsuite.findall("testcase")
    _check_counters(testsuite, cases, where)
    values: dict[str, list[str]] = defaultdict(list)
    for name, value in _properties(testsuite, where):
        if value not in values[name]:
            values[name].append(value)
    session, problems = _session(source, testsuite, values, where)
    attempts = [_attempt(path, session, case) for case in cases] if session else []
    return session, attempts, problems


def _check_counters(testsuite: ET.Element, cases: list[ET.Element], where: str) -> None:
    """The counters pytest writes, recomputed from the testcases (a truncated or edited file disagrees)."""
    counted: Counter[str] = Counter()
    tests, seen = 0, set()
    for case in cases:
        tags = [c.tag for c in case if c.tag in _RESULTS]
        counted.update(tags)
        ident = (case.get("classname"), case.get("name"))
        if ident in seen:
            # pytest's second testcase for a test that failed and then errored in teardown.
            tests += len(tags) - 1
            continue
        seen.add(ident)
        errors = [c.get("message", "") for c in case if c.tag == "error"]
        call_passed = not {"failure", "skipped"} & set(tags) and all(m.startswith(_TEARDOWN) for m in errors)
        tests += len(tags) + call_passed
    recomputed = {"errors": counted["error"], "failures": counted["failure"], "skipped": counted["skipped"],
                  "tests": tests}  # fmt: skip
    for counter in _COUNTERS:
        text = testsuite.get(counter, "")
        if not _NUMBER.fullmatch(text) or int(text) != recomputed[counter]:
            raise Unreadable(
                f'{where} says {counter}="{text}" but its testcases make it {recomputed[counter]}'
            )


def _session(
    origin: str, testsuite: ET.Element, values: dict[str, list[str]], where: str
) -> tuple[Session | None, list[str]]:
    """The session's facts; None (with the reasons) when a fact the gate needs is missing or ambiguous."""
    several = [name for name in (*_SINGLE, "hil.os_version") if len(values.get(name, ())) > 1]
    if several:
        return None, [
            f"{where} reports several values for {n}: {', '.join(sorted(values[n]))}" for n in several
        ]
    one = {name: v[0] for name, v in values.items()}
    missing = [f"{where} has no {name} property; {why}" for name, why in _NEEDED.items() if not one.get(name)]
    if missing:
        return None, missing
    started = one.get("hil.started", "") or testsuite.get("timestamp", "")
    sha, status, source = one["hil.image_sha256"], one["hil.exitstatus"], one["hil.device_type_source"]
    checks = (
        (SHA256.fullmatch(sha), f"hil.image_sha256 {sha[:80]!r} is not a sha256"),
        (_NUMBER.fullmatch(status), f"hil.exitstatus {status[:20]!r} is not an exit status"),
        (source in _DEVICE_TYPE_SOURCES, f"hil.device_type_source {source[:40]!r} is not image or asserted"),
        (parse_time(started) != NEVER, f"start time {started[:40]!r} is no ISO time; cannot order retries"),
        (bool(one.get("hil.update_base_sha256")) == bool(one.get("hil.update_base")),
         "hil.update_base and hil.update_base_sha256 must come together"),
    )  # fmt: skip
    problems = [f"{where}: {why}" for ok, why in checks if not ok]
    if problems:
        return None, problems
    return Session(
        run_id=one["hil.run_id"],
        source=origin,
        device_type=one["hil.device_type"],
        device_type_source=one["hil.device_type_source"],
        os_version=one.get("hil.os_version", ""),
        os_profile=one.get("hil.os_profile", ""),
        image=one.get("hil.image", ""),
        image_sha256=one["hil.image_sha256"],
        started=started,
        exitstatus=int(one["hil.exitstatus"]),
        rigs=tuple(sorted(values.get("hil.rig", ()))),
        update_base=one.get("hil.update_base", ""),
        update_base_sha256=one.get("hil.update_base_sha256", ""),
    ), []


def _attempt(path: Path, session: Session, case: ET.Element) -> Attempt:
    classname, name = case.get("classname", ""), case.get("name", "")
    where = f"<testcase name='{name[:80]}'>"
    _only(case, _CASE_ATTRS, where, ("classname", "name"))
    _no_text(case, where)
    outcome, message = PASSED, ""
    for child in case:
        if child.tag == "properties":
            continue
        if child.tag not in _RESULTS and child.tag not in _OUTPUTS:
            raise Unreadable(f"<{child.tag}> inside {where}")
        _only(child, _CHILD_ATTRS.get(child.tag, set()), f"<{child.tag}> of {where}")
        if len(child):
            raise Unreadable(f"<{child.tag}> of {where} holds elements")
        if child.tag == "skipped" and child.get("type") not in _SKIP_TYPES:
            raise Unreadable(f"<skipped> of {where} has type '{child.get('type')}'")
        mapped = _RESULTS.get(child.tag)
        if mapped and SEVERITY[mapped] > SEVERITY[outcome]:
            outcome, message = mapped, child.get("message", "") or (child.text or "").strip()
            if child.get("type") == "pytest.xfail":
                message = f"xfail: {message}"
    props: dict[str, str] = {}
    for key, value in _properties(case, where):
        if key in _CASE_SINGLE and props.get(key, value) != value:
            raise Unreadable(f"{where} has two values for {key}")
        props.setdefault(key, value)
    suite = props.get("hil.suite") or _suite_from_module(classname)
    return Attempt(
        session=session,
        suite=suite,
        test=f"{classname}::{name}",
        local=local_test_id(suite, classname, name),
        outcome=outcome,
        message=message[:500],
        missing_feature=props.get("hil.missing_feature", ""),
        missing_capability=props.get("hil.missing_capability", ""),
        artifacts=_artifacts(path, case, props),
        seconds=_seconds(case.get("time"), where),
        timings=_timings(props),
        console=_console(path, props.get(CONSOLE_PROPERTY, "")),
    )


def _timings(props: dict[str, str]) -> tuple[tuple[str, float], ...]:
    return tuple((k, float(v)) for k, v in props.items() if k.startswith(_TIMING) and _FLOAT.fullmatch(v))


def _seconds(text: str | None, where: str) -> float:
    """JUnit's time attribute (setup, call and teardown together), as pytest writes it."""
    if text is None:
        return 0.0
    if not _FLOAT.fullmatch(text):
        raise Unreadable(f"{where} has time={text[:20]!r}, which is not a duration in seconds")
    return float(text)


def _console(path: Path, value: str) -> str:
    """The test's transcript slice, `FILE:START-END`, with FILE made absolute like the artifacts."""
    file, _, span = value.rpartition(":")
    if not file or not _SPAN.fullmatch(span):
        return ""
    return f"{(path.parent / file).resolve()}:{span}"


def _suite_from_module(dotted: str) -> str:
    """`suites.boot.test_boot` -> `boot`: the fallback when a test carries no hil.suite property."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "suites" else ""


def _artifacts(path: Path, case: ET.Element, props: dict[str, str]) -> tuple[str, ...]:
    found = [v for k, v in props.items() if k.startswith("hil.artifact")]
    for tag in _OUTPUTS:
        for stream in case.findall(tag):
            found += _ATTACHMENT.findall(stream.text or "")
    return tuple(str((path.parent / item).resolve()) for item in found)
