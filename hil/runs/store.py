"""Recorded runs in the embedded store: written once per session, read by `hil runs`, the gate and the
dashboard.

Each run is written in one transaction (its row, its tests, the per-image test tallies, and the end of
its "running" mark), so two sessions recording at once both land whole. Reads take no write lock.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hil.errors import HilError
from hil.results.model import PASSED, SKIPPED, RecordedJunit
from hil.runs.model import Run, RunFacts, RunSummary, TestResult
from hil.store.db import Database

_SUMMARY = (
    "id, run_id, started, finished, rig, device_type, image, image_sha256, os_version, os_profile, "
    "exitstatus, passed, failed, skipped, seconds, boot_seconds, facts"
)


@dataclass(frozen=True)
class Running:
    """A session that said it started and has not recorded its run yet."""

    run_id: str
    started: str
    host: str
    pid: int
    rig: str
    artifacts: str

    @property
    def alive(self) -> bool:
        """Whether its process still runs (as far as this host can tell: another host's is assumed so)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def transcripts(self) -> list[Path]:
        """The console transcripts its boards are writing."""
        return sorted(Path(self.artifacts).glob("*/console.log"))


@dataclass(frozen=True)
class TestTally:
    """How one test ended across the runs of one image on one device type."""

    device_type: str
    image_sha256: str
    suite: str
    test: str
    passed: int
    failed: int
    skipped: int
    last_run: int


class RunStore:
    """The runs in a store file (the release store's, by default)."""

    def __init__(self, path: Path | None = None) -> None:
        self.db = Database(path)
        self.path = self.db.path

    def start(self, run_id: str, started: str, rig: str, artifacts: Path) -> None:
        """Mark a session as running, so the dashboard can follow its console."""
        with self.db.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO running (run_id, started, host, pid, rig, artifacts) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, started, socket.gethostname(), os.getpid(), rig, str(artifacts.resolve())),
            )

    def record(self, run: Run, junit: bytes) -> int:
        """Keep `run` and its JUnit file's bytes; its row number. A run id is recorded once."""
        suites: dict[str, float] = {}
        for t in run.tests:
            suites[t.suite] = suites.get(t.suite, 0.0) + t.seconds
        facts = {**asdict(run.facts), "suites": suites}
        with self.db.transaction() as db:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run.run_id,)).fetchone():
                raise HilError(f"run {run.run_id} is already recorded in {self.path}")
            row = db.execute(
                f"INSERT INTO runs ({_SUMMARY.removeprefix('id, ')}, junit_path, junit, junit_sha256) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    run.run_id, run.started, run.finished, run.rig, run.device_type, run.image,
                    run.image_sha256, run.os_version, run.os_profile, run.exitstatus, run.passed,
                    run.failed, run.skipped, run.seconds, run.boot_seconds, json.dumps(facts),
                    run.junit_path, zlib.compress(junit, 6), run.junit_sha256,
                ),
            ).fetchone()  # fmt: skip
            run_row = int(row["id"])
            db.executemany(
                "INSERT INTO tests (run, suite, test, name, outcome, seconds, message, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_row, t.suite, t.test, t.name, t.outcome, t.seconds, t.message, _details(t))
                 for t in run.tests],
            )  # fmt: skip
            if run.image_sha256:  # a session that flashed no image says nothing about one
                db.executemany(
                    "INSERT INTO test_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO UPDATE SET passed = passed + excluded.passed, "
                    "failed = failed + excluded.failed, skipped = skipped + excluded.skipped, "
                    "last_run = max(last_run, excluded.last_run)",
                    [(run.device_type, run.image_sha256, t.suite, t.test, int(t.outcome == PASSED),
                      int(t.failing), int(t.outcome == SKIPPED), run_row) for t in run.tests],
                )  # fmt: skip
            db.execute("DELETE FROM running WHERE run_id = ?", (run.run_id,))
            return run_row

    def runs(
        self, *, limit: int = 50, offset: int = 0, device_type: str | None = None, rig: str | None = None
    ) -> list[RunSummary]:
        """Recorded runs, newest first, optionally of one device type or rig."""
        where, args = _filters(device_type, rig)
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(
                f"SELECT {_SUMMARY} FROM runs{where} ORDER BY id DESC LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return [_summary(row) for row in rows]

    def count(self, device_type: str | None = None, rig: str | None = None) -> int:
        """How many runs are recorded (of one device type or rig)."""
        where, args = _filters(device_type, rig)
        with self.db.transaction(read_only=True) as db:
            return int(db.execute(f"SELECT count(*) FROM runs{where}", args).fetchone()[0])

    def device_types(self) -> list[str]:
        """Every device type a run was recorded for."""
        with self.db.transaction(read_only=True) as db:
            return [r[0] for r in db.execute("SELECT DISTINCT device_type FROM runs ORDER BY 1")]

    def get(self, run_id: str) -> Run:
        """The run `run_id` (hil.run_id, or the store's row number) with its tests."""
        with self.db.transaction(read_only=True) as db:
            row = _find(db, run_id, self.path)
            tests = db.execute("SELECT * FROM tests WHERE run = ? ORDER BY id", (row["id"],)).fetchall()
        facts: dict[str, Any] = json.loads(row["facts"])
        facts.pop("suites", None)
        fact_fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in facts.items()}
        return Run(
            id=row["id"], run_id=row["run_id"], started=row["started"], finished=row["finished"],
            rig=row["rig"], device_type=row["device_type"], image=row["image"],
            image_sha256=row["image_sha256"], os_version=row["os_version"], os_profile=row["os_profile"],
            exitstatus=row["exitstatus"], tests=tuple(_test(t) for t in tests),
            facts=RunFacts(**fact_fields),
            junit_path=row["junit_path"], junit_sha256=row["junit_sha256"], boot_seconds=row["boot_seconds"],
        )  # fmt: skip

    def junit(self, run_id: str) -> RecordedJunit:
        """The run's JUnit file as recorded, for the gate (which checks the bytes against the hash)."""
        with self.db.transaction(read_only=True) as db:
            row = _find(db, run_id, self.path)
        try:
            data = zlib.decompress(row["junit"])
        except zlib.error:
            data = b""  # the gate then says the bytes do not match their hash
        path = Path(row["junit_path"])
        return RecordedJunit(f"run {row['run_id']} ({path})", path, data, row["junit_sha256"])

    def known(self, run_ids: set[str]) -> set[str]:
        """Which of `run_ids` are recorded here."""
        with self.db.transaction(read_only=True) as db:
            return {
                row[0]
                for chunk in _chunks(sorted(run_ids), 500)
                for row in db.execute(
                    f"SELECT run_id FROM runs WHERE run_id IN ({', '.join('?' * len(chunk))})", chunk
                )
            }

    def running(self) -> list[Running]:
        """Sessions that said they started and have not recorded their run, newest first."""
        with self.db.transaction(read_only=True) as db:
            rows = db.execute("SELECT * FROM running ORDER BY started DESC").fetchall()
        return [Running(**dict(row)) for row in rows]

    def flaky(self, limit: int = 200) -> list[TestTally]:
        """Tests that both passed and failed on one image of one device type, most recently seen first."""
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(
                "SELECT * FROM test_stats WHERE failed > 0 AND passed > 0 ORDER BY last_run DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [TestTally(**dict(row)) for row in rows]

    def history(
        self, suite: str, test: str, device_type: str, limit: int = 200
    ) -> list[tuple[RunSummary, TestResult]]:
        """The test's outcome in each run of the device type that ran it, newest first."""
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(
                f"SELECT {', '.join('r.' + c for c in _SUMMARY.split(', '))}, t.suite, t.test, t.name, "
                "t.outcome, t.seconds, t.message, t.details FROM tests t JOIN runs r ON r.id = t.run "
                "WHERE t.suite = ? AND t.test = ? AND r.device_type = ? ORDER BY t.run DESC LIMIT ?",
                (suite, test, device_type, limit),
            ).fetchall()
        return [(_summary(row), _test(row)) for row in rows]


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _find(db: sqlite3.Connection, run_id: str, path: Path) -> sqlite3.Row:
    row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if row is None and run_id.isdigit() and len(run_id) < 19:
        row = db.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
    if row is None:
        raise HilError(f"run {run_id[:40]} is not recorded in {path} (see `hil runs list`)")
    return row


def _filters(device_type: str | None, rig: str | None) -> tuple[str, tuple[str, ...]]:
    clauses = [(c, v) for c, v in (("device_type = ?", device_type), ("rig = ?", rig)) if v]
    if not clauses:
        return "", ()
    return " WHERE " + " AND ".join(c for c, _ in clauses), tuple(v for _, v in clauses if v)


def _details(test: TestResult) -> str:
    return json.dumps({
        "missing_feature": test.missing_feature, "missing_capability": test.missing_capability,
        "artifacts": list(test.artifacts), "timings": test.timings, "console": test.console,
    })  # fmt: skip


def _test(row: sqlite3.Row) -> TestResult:
    details = json.loads(row["details"])
    return TestResult(
        suite=row["suite"], test=row["test"], name=row["name"], outcome=row["outcome"],
        seconds=row["seconds"], message=row["message"], missing_feature=details["missing_feature"],
        missing_capability=details["missing_capability"], artifacts=tuple(details["artifacts"]),
        timings=details["timings"], console=details["console"],
    )  # fmt: skip


def _summary(row: sqlite3.Row) -> RunSummary:
    facts = json.loads(row["facts"])
    return RunSummary(
        id=row["id"], run_id=row["run_id"], started=row["started"], finished=row["finished"], rig=row["rig"],
        device_type=row["device_type"], image=row["image"], image_sha256=row["image_sha256"],
        os_version=row["os_version"], os_profile=row["os_profile"], exitstatus=row["exitstatus"],
        passed=row["passed"], failed=row["failed"], skipped=row["skipped"], seconds=row["seconds"],
        boot_seconds=row["boot_seconds"], boot_phases=facts.get("boot_phases", {}),
        suites=facts.get("suites", {}),
    )  # fmt: skip
