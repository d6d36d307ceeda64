"""Recorded runs in hil's store (the embedded sqlite file, or a lab's PostgreSQL): written once per
session, read by `hil runs`, the gate and the dashboard.

Each run is written in one transaction (its row, its tests, the per-image test tallies, and the end of
its "running" mark), so two sessions recording at once both land whole, and a run id lands once. Reads
take no write lock.
"""

from __future__ import annotations

import json
import os
import socket
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from hil.errors import HilError
from hil.results.model import PASSED, SKIPPED, RecordedJunit
from hil.runs.model import Run, RunFacts, RunSummary, TestResult
from hil.store.db import Database, with_retries
from hil.store.schema import running, runs, test_stats, tests
from hil.store.url import StoreUrl

_SUMMARY = [
    runs.c.id, runs.c.run_id, runs.c.started, runs.c.finished, runs.c.rig, runs.c.device_type, runs.c.image,
    runs.c.image_sha256, runs.c.os_version, runs.c.os_profile, runs.c.exitstatus, runs.c.passed,
    runs.c.failed, runs.c.skipped, runs.c.seconds, runs.c.boot_seconds, runs.c.facts, runs.c.build_tag,
]  # fmt: skip
_TEST = [tests.c.suite, tests.c.test, tests.c.name, tests.c.outcome, tests.c.seconds, tests.c.message,
         tests.c.details]  # fmt: skip


class AlreadyRecorded(HilError):
    """The run id is recorded already; `same` says whether with the same JUnit file (by its hash)."""

    def __init__(self, run_id: str, where: str, same: bool) -> None:
        super().__init__(f"run {run_id} is already recorded in {where}")
        self.run_id, self.same = run_id, same


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
    """The runs in a store (the release store's, by default)."""

    def __init__(self, store: str | Path | StoreUrl | None = None) -> None:
        self.db = Database(store)
        self.path = self.db.path
        self.where = self.db.where

    def start(self, run_id: str, started: str, rig: str, artifacts: Path) -> None:
        """Mark a session as running, so the dashboard can follow its console."""
        values = {
            "run_id": run_id, "started": started, "host": socket.gethostname(), "pid": os.getpid(),
            "rig": rig, "artifacts": str(artifacts.resolve()),
        }  # fmt: skip
        with self.db.transaction() as db:
            upsert = _insert_for(db)(running).values(**values)
            db.execute(upsert.on_conflict_do_update(index_elements=["run_id"], set_=values))

    def record(self, run: Run, junit: bytes, *, retry_for: float = 0.0) -> int:
        """Keep `run` and its JUnit file's bytes; its row number. A run id is recorded once (AlreadyRecorded
        after). A failing connection (a server restarting) is tried again for up to `retry_for` seconds,
        then StoreConnectionError; a retry that finds the run there with its JUnit hash is the earlier try
        having committed as the connection dropped."""
        return with_retries(lambda n: self._record(run, junit, retried=n > 0), retry_for)

    def _record(self, run: Run, junit: bytes, *, retried: bool) -> int:
        suites: dict[str, float] = {}
        for t in run.tests:
            suites[t.suite] = suites.get(t.suite, 0.0) + t.seconds
        facts = {**asdict(run.facts), "suites": suites}
        with self.db.transaction() as db:
            found = db.execute(
                select(runs.c.id, runs.c.junit_sha256).where(runs.c.run_id == run.run_id)
            ).first()
            if found and retried and found.junit_sha256 == run.junit_sha256:
                return int(found.id)
            if found:
                raise AlreadyRecorded(run.run_id, self.where, found.junit_sha256 == run.junit_sha256)
            try:
                key = db.execute(insert(runs).values(
                    run_id=run.run_id, started=run.started, finished=run.finished, rig=run.rig,
                    device_type=run.device_type, image=run.image, image_sha256=run.image_sha256,
                    os_version=run.os_version, os_profile=run.os_profile, exitstatus=run.exitstatus,
                    passed=run.passed, failed=run.failed, skipped=run.skipped, seconds=run.seconds,
                    boot_seconds=run.boot_seconds, facts=json.dumps(facts), junit_path=run.junit_path,
                    junit=zlib.compress(junit, 6), junit_sha256=run.junit_sha256, build_tag=run.build_tag,
                )).inserted_primary_key  # fmt: skip
            except IntegrityError:  # another session recorded the same run id meanwhile (PostgreSQL)
                raise AlreadyRecorded(run.run_id, self.where, False) from None
            assert key is not None
            run_row = int(key[0])
            if run.tests:
                db.execute(insert(tests), [
                    {"run": run_row, "suite": t.suite, "test": t.test, "name": t.name,
                     "outcome": t.outcome, "seconds": t.seconds, "message": t.message,
                     "details": _details(t)}
                    for t in run.tests
                ])  # fmt: skip
            if run.image_sha256 and run.tests:  # a session that flashed no image says nothing about one
                _tally(db, run, run_row)
            db.execute(delete(running).where(running.c.run_id == run.run_id))
            return run_row

    def runs(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        device_type: str | None = None,
        rig: str | None = None,
        build_tag: str | None = None,
    ) -> list[RunSummary]:
        """Recorded runs, newest first, optionally of one device type, rig or CI build tag."""
        query = select(*_SUMMARY).where(*_filters(device_type, rig, build_tag))
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(query.order_by(runs.c.id.desc()).limit(limit).offset(offset)).mappings().all()
        return [_summary(row) for row in rows]

    def count(
        self, device_type: str | None = None, rig: str | None = None, build_tag: str | None = None
    ) -> int:
        """How many runs are recorded (of one device type, rig or CI build tag)."""
        with self.db.transaction(read_only=True) as db:
            query = select(func.count()).select_from(runs).where(*_filters(device_type, rig, build_tag))
            return int(db.execute(query).scalar_one())

    def tagged(self, build_tag: str) -> list[str]:
        """The run ids recorded with the CI build tag, oldest first: the runs a gate judges for a build."""
        query = select(runs.c.run_id).where(runs.c.build_tag == build_tag).order_by(runs.c.id)
        with self.db.transaction(read_only=True) as db:
            return list(db.execute(query).scalars())

    def device_types(self) -> list[str]:
        """Every device type a run was recorded for. A loose index scan (the next device type after the
        last, one index probe each) rather than DISTINCT, which reads every run's index entry: about 1 ms
        instead of 100 at 100,000 runs on PostgreSQL, and as quick on sqlite."""
        with self.db.transaction(read_only=True) as db:
            return list(db.execute(_DEVICE_TYPES).scalars())

    def get(self, run_id: str) -> Run:
        """The run `run_id` (hil.run_id, or the store's row number) with its tests."""
        with self.db.transaction(read_only=True) as db:
            row = _find(db, run_id, self.where)
            found = db.execute(select(tests).where(tests.c.run == row["id"]).order_by(tests.c.id))
            test_rows = found.mappings().all()
        facts: dict[str, Any] = json.loads(row["facts"])
        facts.pop("suites", None)
        fact_fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in facts.items()}
        return Run(
            id=row["id"], run_id=row["run_id"], started=row["started"], finished=row["finished"],
            rig=row["rig"], device_type=row["device_type"], image=row["image"],
            image_sha256=row["image_sha256"], os_version=row["os_version"], os_profile=row["os_profile"],
            exitstatus=row["exitstatus"], tests=tuple(_test(t) for t in test_rows),
            facts=RunFacts(**fact_fields),
            junit_path=row["junit_path"], junit_sha256=row["junit_sha256"], boot_seconds=row["boot_seconds"],
            build_tag=row["build_tag"],
        )  # fmt: skip

    def junit(self, run_id: str) -> RecordedJunit:
        """The run's JUnit file as recorded, for the gate (which checks the bytes against the hash)."""
        with self.db.transaction(read_only=True) as db:
            row = _find(db, run_id, self.where)
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
                found
                for chunk in _chunks(sorted(run_ids), 500)
                for found in db.execute(select(runs.c.run_id).where(runs.c.run_id.in_(chunk))).scalars()
            }

    def running(self) -> list[Running]:
        """Sessions that said they started and have not recorded their run, newest first."""
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(select(running).order_by(running.c.started.desc())).mappings().all()
        return [Running(**dict(row)) for row in rows]

    def flaky(self, limit: int = 200) -> list[TestTally]:
        """Tests that both passed and failed on one image of one device type, most recently seen first."""
        query = (
            select(test_stats)
            .where(test_stats.c.failed > 0, test_stats.c.passed > 0)
            .order_by(test_stats.c.last_run.desc())
            .limit(limit)
        )
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(query).mappings().all()
        return [TestTally(**dict(row)) for row in rows]

    def history(
        self, suite: str, test: str, device_type: str, limit: int = 200
    ) -> list[tuple[RunSummary, TestResult]]:
        """The test's outcome in each run of the device type that ran it, newest first."""
        query = (
            select(*_SUMMARY, *_TEST)
            .join_from(tests, runs, runs.c.id == tests.c.run)
            .where(tests.c.suite == suite, tests.c.test == test, runs.c.device_type == device_type)
            .order_by(tests.c.run.desc())
            .limit(limit)
        )
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(query).mappings().all()
        return [(_summary(row), _test(row)) for row in rows]


_DEVICE_TYPES = text(
    "WITH RECURSIVE t(d) AS (SELECT min(device_type) FROM runs UNION ALL "
    "SELECT (SELECT min(device_type) FROM runs WHERE device_type > t.d) FROM t WHERE t.d IS NOT NULL) "
    "SELECT d FROM t WHERE d IS NOT NULL"
)


def _insert_for(db: Connection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (sqlite and PostgreSQL spell it alike)."""
    return postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert


def _tally(db: Connection, run: Run, run_row: int) -> None:
    """Add the run's outcomes to its image's per-test tallies."""
    rows = [
        {"device_type": run.device_type, "image_sha256": run.image_sha256, "suite": t.suite, "test": t.test,
         "passed": int(t.outcome == PASSED), "failed": int(t.failing), "skipped": int(t.outcome == SKIPPED),
         "last_run": run_row}
        for t in run.tests
    ]  # fmt: skip
    upsert = _insert_for(db)(test_stats)
    newest = func.greatest if db.dialect.name == "postgresql" else func.max
    for row in rows:  # one statement per test: a test may appear twice in a run (a rerun)
        stmt = upsert.values(**row)
        db.execute(stmt.on_conflict_do_update(
            index_elements=["device_type", "image_sha256", "suite", "test"],
            set_={
                "passed": test_stats.c.passed + stmt.excluded.passed,
                "failed": test_stats.c.failed + stmt.excluded.failed,
                "skipped": test_stats.c.skipped + stmt.excluded.skipped,
                "last_run": newest(test_stats.c.last_run, stmt.excluded.last_run),
            },
        ))  # fmt: skip


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _find(db: Connection, run_id: str, where: str) -> RowMapping:
    row = db.execute(select(runs).where(runs.c.run_id == run_id)).mappings().first()
    if row is None and run_id.isdigit() and len(run_id) < 19:
        row = db.execute(select(runs).where(runs.c.id == int(run_id))).mappings().first()
    if row is None:
        raise HilError(f"run {run_id[:40]} is not recorded in {where} (see `hil runs list`)")
    return row


def _filters(device_type: str | None, rig: str | None, build_tag: str | None = None) -> list[Any]:
    given = ((runs.c.device_type, device_type), (runs.c.rig, rig), (runs.c.build_tag, build_tag))
    return [c == v for c, v in given if v]


def _details(test: TestResult) -> str:
    return json.dumps({
        "missing_feature": test.missing_feature, "missing_capability": test.missing_capability,
        "artifacts": list(test.artifacts), "timings": test.timings, "console": test.console,
    })  # fmt: skip


def _test(row: RowMapping) -> TestResult:
    details = json.loads(row["details"])
    return TestResult(
        suite=row["suite"], test=row["test"], name=row["name"], outcome=row["outcome"],
        seconds=row["seconds"], message=row["message"], missing_feature=details["missing_feature"],
        missing_capability=details["missing_capability"], artifacts=tuple(details["artifacts"]),
        timings=details["timings"], console=details["console"],
    )  # fmt: skip


def _summary(row: RowMapping) -> RunSummary:
    facts = json.loads(row["facts"])
    return RunSummary(
        id=row["id"], run_id=row["run_id"], started=row["started"], finished=row["finished"], rig=row["rig"],
        device_type=row["device_type"], image=row["image"], image_sha256=row["image_sha256"],
        os_version=row["os_version"], os_profile=row["os_profile"], exitstatus=row["exitstatus"],
        passed=row["passed"], failed=row["failed"], skipped=row["skipped"], seconds=row["seconds"],
        boot_seconds=row["boot_seconds"], boot_phases=facts.get("boot_phases", {}),
        suites=facts.get("suites", {}), build_tag=row["build_tag"],
    )  # fmt: skip
