"""Test results in: JUnit XML (the record) and allure-results (cross-checked), read into sessions and
attempts, with every read bounded and everything not understood refused.

A result directory is untrusted input: a FIFO, a device, a symlink loop or a gigabyte file named `*.xml`
must give a refusal naming the file, never a hang, a MemoryError or a pass.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# Outcomes every source is mapped onto; anything else is an error, never a pass.
PASSED, FAILED, ERROR, SKIPPED = "passed", "failed", "error", "skipped"

# Two records of one test from one session (a failure and a teardown error): the worse one counts.
SEVERITY = {PASSED: 0, SKIPPED: 1, FAILED: 2, ERROR: 3}

NEVER = datetime.min.replace(tzinfo=UTC)

# Bounds on what a gate reads: far above what a run writes, far below what exhausts a CI agent.
MAX_ENTRIES = 200_000
MAX_JUNIT_BYTES = 64 << 20
MAX_ALLURE_BYTES = 8 << 20
MAX_TOTAL_BYTES = 1 << 30


class Unreadable(Exception):
    """A result file the gate will not take as evidence; the message says why."""


@dataclass(frozen=True)
class Session:
    """One pytest session's facts, as its JUnit testsuite properties state them."""

    run_id: str
    source: str
    device_type: str
    device_type_source: str  # "image" (read from the image) or "asserted" (stated by the user)
    os_version: str  # "" when the DUT never booted far enough to report one
    os_profile: str
    image: str
    image_sha256: str
    started: str
    exitstatus: int
    rigs: tuple[str, ...] = ()
    update_base: str = ""
    update_base_sha256: str = ""


@dataclass(frozen=True)
class Attempt:
    """One execution of one test, in one session."""

    session: Session
    suite: str
    test: str  # classname::name, as the run named it
    local: str  # the id within its suite, the same whatever directory the run started in
    outcome: str
    message: str = ""
    missing_feature: str = ""  # the OS feature a skip named (hil.missing_feature)
    missing_capability: str = ""  # the rig capability a skip named (hil.missing_capability)
    artifacts: tuple[str, ...] = ()
    seconds: float = 0.0  # setup, call and teardown, as JUnit's time attribute says
    timings: tuple[tuple[str, float], ...] = ()  # what the test measured (hil.boot_seconds, ...)
    console: str = ""  # the test's slice of the console transcript: PATH:START-END (bytes)

    @property
    def device_type(self) -> str:
        """The device type the session ran on."""
        return self.session.device_type

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the test across retries: (device type, suite, test within the suite)."""
        return (self.session.device_type, self.suite, self.local)


@dataclass(frozen=True)
class RecordedJunit:
    """A run's JUnit file as the run store kept it: its bytes, their sha256, and where it was written."""

    source: str  # how results name it: "run RUN_ID (PATH)"
    path: Path  # where it was written; its artifacts are named relative to it
    data: bytes
    sha256: str


@dataclass
class ResultSet:
    """Every session and attempt found, the hash of every file read, and what could not be read."""

    sessions: list[Session] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def evidence(self) -> dict:
        """Sessions and attempts as plain data; attempts name their session by run id and file."""
        return {
            "sessions": [asdict(s) for s in self.sessions],
            "attempts": [
                {k: v for k, v in asdict(a).items() if k != "session"}
                | {"run_id": a.session.run_id, "source": a.session.source}
                for a in self.attempts
            ],
        }


def parse_time(text: str) -> datetime:
    """An ISO time (UTC when it names no zone), or NEVER."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return NEVER
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_test_id(suite: str, classname: str, name: str) -> str:
    """`suites.boot.test_boot` + `test_x[a]` -> `test_boot::test_x[a]`: a test's id within its suite.

    The dotted prefix depends on the directory pytest started in (a checkout, an installed wheel, the
    suite folder itself); what follows the suite's own segment does not.
    """
    parts = classname.split(".") if classname else []
    for i, part in enumerate(parts):
        if part == suite and (i == 0 or parts[i - 1] == "suites"):
            parts = parts[i + 1 :]
            break
    return f"{'.'.join(parts)}::{name}"


class Reader:
    """Reads result files within the bounds, records each file's hash, and turns refusals into problems."""

    def __init__(self, results: ResultSet) -> None:
        self.results = results
        self.total = 0

    def read(self, path: Path, limit: int) -> bytes:
        """The bytes of a result file within the bounds, its hash recorded; Unreadable otherwise."""
        data = read_bounded(path, limit)
        self.total += len(data)
        if self.total > MAX_TOTAL_BYTES:
            raise Unreadable(f"the results together exceed {MAX_TOTAL_BYTES >> 20} MiB")
        self.results.files[str(path)] = hashlib.sha256(data).hexdigest()
        return data

    def take(self, recorded: RecordedJunit) -> bytes:
        """The bytes of a recorded JUnit file, within the bounds and matching the hash kept with them."""
        if len(recorded.data) > MAX_JUNIT_BYTES:
            raise Unreadable(f"larger than the {MAX_JUNIT_BYTES >> 10} KiB allowed")
        digest = hashlib.sha256(recorded.data).hexdigest()
        if digest != recorded.sha256:
            raise Unreadable(f"its bytes hash to {digest}, not the {recorded.sha256} recorded with them")
        self.total += len(recorded.data)
        if self.total > MAX_TOTAL_BYTES:
            raise Unreadable(f"the results together exceed {MAX_TOTAL_BYTES >> 20} MiB")
        self.results.files[recorded.source] = digest
        return recorded.data

    def refuse(self, path: Path, why: str) -> None:
        """Record that `path` is not evidence, and why."""
        self.results.problems.append(f"{path}: {why}")


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; Unreadable otherwise, and never blocks
    (a FIFO or a device behind the name, even one swapped in after a check, is refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise Unreadable(f"cannot open ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise Unreadable(f"not a regular file ({_kind(mode)})")
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise Unreadable(f"larger than the {limit >> 10} KiB allowed")
    except OSError as exc:
        raise Unreadable(f"cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return name
    return "not a file"


def walk(root: Path, problems: list[str]) -> Iterator[Path]:
    """Every non-directory entry under `root`, sorted; symlinked directories are not followed."""
    seen = 0
    errors: list[OSError] = []
    for folder, dirs, files in os.walk(root, onerror=errors.append, followlinks=False):
        dirs.sort()
        seen += len(dirs) + len(files)
        if seen > MAX_ENTRIES:
            problems.append(f"{root}: more than {MAX_ENTRIES} entries; point --results at the results")
            return
        for name in sorted(files):
            yield Path(folder) / name
    problems += [f"{e.filename}: cannot list ({e.strerror})" for e in errors]
