"""Which sessions' results may count for a release, and which attempt of each test counts.

A session counts only when it is provably about this release: its OS version, the content hash of the
image it ran, a pytest session that ended normally, a start time that is not in the future. Retries are
ordered by start time; two runs that started at the same moment and disagree refuse, rather than letting
a name decide.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hil.results.model import PASSED, SEVERITY, SKIPPED, Attempt, Session, parse_time

# How far a CI agent's clock may run ahead of the gate's before its start times stop being evidence.
CLOCK_SKEW = timedelta(minutes=2)
_EXIT_STATUS = {2: "interrupted", 3: "internal error", 4: "usage error", 5: "no tests collected"}


@dataclass(frozen=True)
class Subject:
    """What the results must be about: a release, its OS version, device types and their images."""

    release_id: str
    version: str
    device_types: tuple[str, ...]
    images: dict[str, str] = field(default_factory=dict)  # device type -> sha256 of the image it ships


@dataclass
class Judged:
    """The sessions whose results count, and what the gate says about the rest."""

    counted: set[Session] = field(default_factory=set)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def judge_sessions(
    attempts: list[Attempt], sessions: list[Session], subject: Subject, now: datetime
) -> Judged:
    """Hold every session for the release's device types against the release; note the others."""
    judged = Judged()
    by_session: dict[Session, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_session[attempt.session].append(attempt)
    others = sorted({s.device_type for s in sessions} - set(subject.device_types))
    if others:
        judged.notes.append(
            f"results for {', '.join(others)} ignored: the release ships for "
            f"{', '.join(subject.device_types)}"
        )
    for device_type in subject.device_types:
        if not subject.images.get(device_type):
            judged.reasons.append(
                f"release {subject.release_id} names no image for {device_type}, so no result can be tied to "
                "it (hil release create --image, or --image at the gate for a balena release)"
            )
    for session in sorted((s for s in sessions if s.device_type in subject.device_types), key=_order):
        if version := _wrong_version(session, len(by_session[session]), subject.version):
            judged.reasons.append(version)
        reasons = _session_reasons(session, by_session[session], subject, now)
        judged.reasons += reasons
        # Unversioned results (a DUT that never booted) still show in the table; they refuse all the same.
        if not reasons and session.os_version in (subject.version, ""):
            judged.counted.add(session)
        if session.device_type_source == "asserted":
            judged.notes.append(
                f"{session.source}: the device type {session.device_type} was asserted by the user, not read "
                "from the image (hil.device_type_source=asserted)"
            )
        if session.update_base:
            judged.notes.append(
                f"{session.source}: the update base {session.update_base} (sha256 "
                f"{session.update_base_sha256}) was flashed on purpose; the gate judged the image under test "
                f"(sha256 {session.image_sha256})"
            )
    for device_type in subject.device_types:
        profiles = sorted({s.os_profile for s in judged.counted if s.device_type == device_type})
        if len(profiles) > 1:
            # Which skips are allowed follows the profile: one image is one OS, judged one way.
            judged.reasons.append(
                f"{device_type}: the results come from runs under different OS profiles "
                f"({', '.join(p or '(none)' for p in profiles)}); run every suite under the image's profile"
            )
    return judged


def _order(session: Session) -> tuple[str, str]:
    return (session.source, session.run_id)


def _wrong_version(session: Session, count: int, version: str) -> str | None:
    if session.os_version == version:
        return None
    if not session.os_version:
        return (
            f"{session.source}: {count} result(s) do not say which OS version they are for "
            "(no hil.os_version)"
        )
    return f"{session.source}: {count} result(s) are for version {session.os_version}, not {version}"


def _session_reasons(session: Session, attempts: list[Attempt], subject: Subject, now: datetime) -> list[str]:
    """Why a session's results cannot count, apart from its OS version."""
    where, count = session.source, len(attempts)
    reasons = []
    expected = subject.images.get(session.device_type)
    if expected and session.image_sha256 != expected:
        reasons.append(
            f"{where}: {count} result(s) are about image sha256 {session.image_sha256} ({session.image}), "
            f"not the image release {subject.release_id} ships for {session.device_type} (sha256 {expected})"
        )
    failing = any(a.outcome not in (PASSED, SKIPPED) for a in attempts)
    if session.exitstatus in _EXIT_STATUS or session.exitstatus > 5:
        meaning = _EXIT_STATUS.get(session.exitstatus, "not pytest's")
        reasons.append(
            f"{where}: the pytest session ended with exit status {session.exitstatus} ({meaning}); such a "
            "session is never evidence for a final release"
        )
    elif session.exitstatus == 0 and failing:
        reasons.append(f"{where}: the session ended with exit status 0, yet its results hold failing tests")
    elif session.exitstatus == 1 and not failing:
        reasons.append(
            f"{where}: the session ended with exit status 1 (tests failed), yet no test in it failed"
        )
    if parse_time(session.started) > now + CLOCK_SKEW:
        reasons.append(
            f"{where}: start time {session.started} is in the future (the gate's clock reads "
            f"{now.isoformat(timespec='seconds')}); a time from the future is not evidence"
        )
    return reasons


def _severity(attempt: Attempt) -> int:
    return SEVERITY.get(attempt.outcome, len(SEVERITY))


def latest_attempts(attempts: Iterable[Attempt]) -> tuple[dict[tuple[str, str, str], Attempt], list[str]]:
    """The attempt that counts for each test: the one from the session that started last; the worse of
    two records from one session. Two sessions that started at the same time and disagree are a reason."""
    by_key: dict[tuple[str, str, str], list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        by_key[attempt.key].append(attempt)
    chosen, reasons = {}, []
    for key, group in by_key.items():
        newest = max(parse_time(a.session.started) for a in group)
        last = [a for a in group if parse_time(a.session.started) == newest]
        chosen[key] = max(last, key=_severity)
        runs: dict[str, Attempt] = {}
        for a in last:
            runs[a.session.run_id] = max(runs.get(a.session.run_id, a), a, key=_severity)
        if len(runs) > 1 and len({a.outcome for a in runs.values()}) > 1:
            said = ", ".join(f"{run} {a.outcome}" for run, a in sorted(runs.items()))
            reasons.append(
                f"{key[0]}/{key[1]}: {chosen[key].test}: runs that started at the same time "
                f"({newest.isoformat()}) disagree ({said}); cannot tell which is the retry"
            )
    return chosen, reasons
