"""What a recorded run is: the session's facts, each test's outcome and duration, boot times, artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field

from hil.results.model import ERROR, FAILED, PASSED, SKIPPED

# The file a run is kept in, beside its artifacts, while its store cannot be reached (hil.runs.kept).
KEPT = "hil-run-record.json"


@dataclass(frozen=True)
class TestResult:
    """One test of a run: how it ended, why, how long it took, what it measured and where its output is."""

    suite: str
    test: str  # the id within its suite (as the gate names it)
    name: str  # classname::name, as the run named it
    outcome: str
    seconds: float
    message: str = ""
    missing_feature: str = ""
    missing_capability: str = ""
    artifacts: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    console: str = ""  # PATH:START-END of the test's slice of the transcript, or ""

    @property
    def failing(self) -> bool:
        """Failed or errored."""
        return self.outcome in (FAILED, ERROR)

    def console_slice(self) -> tuple[str, int, int] | None:
        """(transcript, start, end) of the test's console output, or None when it had no DUT."""
        path, _, span = self.console.rpartition(":")
        start, _, end = span.partition("-")
        if not path or not start.isdigit() or not end.isdigit():
            return None
        return path, int(start), int(end)


@dataclass(frozen=True)
class RunFacts:
    """Where a run's evidence lies, and what the store could not read from it."""

    artifacts: str = ""  # the run's artifacts directory
    transcripts: tuple[str, ...] = ()  # every board's console.log
    allure: str = ""  # the allure-results directory, when there was one
    rigs: tuple[str, ...] = ()  # every rig the session leased (several under xdist or a pool)
    device_type_source: str = ""
    boot_phases: dict[str, float] = field(default_factory=dict)  # the first boot's phases, in seconds
    problems: tuple[str, ...] = ()  # why the JUnit file is not evidence, when it is not


@dataclass(frozen=True)
class Run:
    """One recorded pytest session."""

    run_id: str
    started: str
    finished: str
    rig: str
    device_type: str
    image: str
    image_sha256: str
    os_version: str
    os_profile: str
    exitstatus: int
    tests: tuple[TestResult, ...]
    facts: RunFacts
    junit_path: str
    junit_sha256: str
    boot_seconds: float | None = None
    id: int = 0  # the store's row number, once recorded
    build_tag: str = ""  # the CI build that made it (--hil-build-tag, else $BUILD_TAG), or ""

    def count(self, outcome: str) -> int:
        """How many tests ended `outcome` (failed counts errors too)."""
        if outcome == FAILED:
            return sum(t.failing for t in self.tests)
        return sum(t.outcome == outcome for t in self.tests)

    @property
    def seconds(self) -> float:
        """All tests' durations together."""
        return sum(t.seconds for t in self.tests)

    @property
    def passed(self) -> int:
        """Tests passed."""
        return self.count(PASSED)

    @property
    def failed(self) -> int:
        """Tests failed or errored."""
        return self.count(FAILED)

    @property
    def skipped(self) -> int:
        """Tests skipped."""
        return self.count(SKIPPED)


@dataclass(frozen=True)
class RunSummary:
    """A run as lists and trends show it: no tests, no JUnit."""

    id: int
    run_id: str
    started: str
    finished: str
    rig: str
    device_type: str
    image: str
    image_sha256: str
    os_version: str
    os_profile: str
    exitstatus: int
    passed: int
    failed: int
    skipped: int
    seconds: float
    boot_seconds: float | None
    boot_phases: dict[str, float]
    suites: dict[str, float]  # suite -> seconds its tests took
    build_tag: str = ""  # the CI build that made it, or ""

    @property
    def total(self) -> int:
        """Tests in the run."""
        return self.passed + self.failed + self.skipped

    @property
    def pass_rate(self) -> float:
        """Passed over passed and failed (skips do not count either way); 0 when nothing ran."""
        ran = self.passed + self.failed
        return self.passed / ran if ran else 0.0
