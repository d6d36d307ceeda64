"""A run as the store keeps it, made from the session's JUnit file and the artifacts beside it.

The JUnit file is read by the gate's own reader, so the store's view of a run (its tests, outcomes,
reasons) is the gate's; the file's bytes are kept too, so a gate can judge the recorded run later. A
session the gate could not take as evidence (it never flashed an image, so its JUnit names none) is
still recorded, with what the plugin knew and the reader's reasons.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hil.results.junit import read_recorded_junit
from hil.results.model import (
    MAX_JUNIT_BYTES,
    Attempt,
    Reader,
    RecordedJunit,
    ResultSet,
    Unreadable,
    read_bounded,
)
from hil.runs.model import Run, RunFacts, TestResult
from hil.runs.phases import boot_phases

BOOT_SECONDS = "hil.boot_seconds"


@dataclass(frozen=True)
class SessionInfo:
    """What the plugin knows about its session whatever the JUnit file says."""

    run_id: str
    started: str
    rig: str  # the --rig argument, or the rig leased
    device_type: str
    artifacts: Path
    image: str = ""
    allure: str = ""
    build_tag: str = ""  # the CI build this session belongs to ($BUILD_TAG under Jenkins)


def run_from_junit(junit: Path, info: SessionInfo) -> tuple[Run, bytes]:
    """The run that `junit` (written by the session `info` describes) records, and the file's bytes."""
    try:
        data = read_bounded(junit, MAX_JUNIT_BYTES)
    except Unreadable as exc:
        raise Unreadable(f"{junit}: {exc}") from None
    sha = hashlib.sha256(data).hexdigest()
    results = ResultSet()
    read_recorded_junit(Reader(results), RecordedJunit(str(junit), junit.resolve(), data, sha))
    ours = [s for s in results.sessions if s.run_id == info.run_id] or results.sessions[:1]
    session = ours[0] if ours else None
    attempts = [a for a in results.attempts if a.session == session]
    transcripts = sorted(info.artifacts.glob("*/console.log"))
    timings = [pair for a in attempts for pair in a.timings]
    boot = next((seconds for name, seconds in timings if name == BOOT_SECONDS), None)
    facts = RunFacts(
        artifacts=str(info.artifacts.resolve()),
        transcripts=tuple(str(t.resolve()) for t in transcripts),
        allure=info.allure,
        rigs=session.rigs if session else (info.rig,),
        device_type_source=session.device_type_source if session else "",
        boot_phases=boot_phases(transcripts, timings),
        problems=tuple(results.problems),
    )
    run = Run(
        run_id=info.run_id,
        started=session.started if session else info.started,
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        rig=", ".join(session.rigs) if session and session.rigs else info.rig,
        device_type=session.device_type if session else info.device_type,
        image=session.image if session else info.image,
        image_sha256=session.image_sha256 if session else "",
        os_version=session.os_version if session else "",
        os_profile=session.os_profile if session else "",
        exitstatus=session.exitstatus if session else -1,
        tests=tuple(_test(a) for a in attempts),
        facts=facts,
        junit_path=str(junit.resolve()),
        junit_sha256=sha,
        boot_seconds=boot,
        build_tag=info.build_tag,
    )
    return run, data


def _test(attempt: Attempt) -> TestResult:
    return TestResult(
        suite=attempt.suite,
        test=attempt.local,
        name=attempt.test,
        outcome=attempt.outcome,
        seconds=attempt.seconds,
        message=attempt.message,
        missing_feature=attempt.missing_feature,
        missing_capability=attempt.missing_capability,
        artifacts=attempt.artifacts,
        timings=dict(attempt.timings),
        console=attempt.console,
    )
