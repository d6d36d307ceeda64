"""Many runs into a store at once, for the benchmarks: the rows RunStore.record writes, in batches.

RunStore.record writes one run per transaction (its row, its tests, the image's per-test tallies, the end of
its "running" mark), which is right for sessions recording at once and slow for filling a store with
100,000 runs. record_many writes the same rows for a batch of runs in one transaction: the runs with one
multi-row INSERT ... RETURNING (their ids in the order given, as one record() after another would number
them), the tests of them all (their details as record() writes them; through COPY on PostgreSQL), and
each tally once with the batch's outcomes added up. `dashboard.py --check-bulk` compares a store filled
this way with one filled by RunStore.record, table by table.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, delete, func, insert
from sqlalchemy.exc import IntegrityError

from hil.errors import HilError
from hil.results.model import PASSED, SKIPPED
from hil.runs.model import Run
from hil.runs.store import RunStore, _details, _insert_for
from hil.store.schema import running, runs, test_stats, tests


def record_many(store: RunStore, batch: Sequence[tuple[Run, bytes]]) -> list[int]:
    """Keep every run of `batch` with its JUnit file's bytes, as RunStore.record would one by one; their
    row numbers. A run id already recorded refuses the whole batch."""
    if not batch:
        return []
    try:
        with store.db.transaction() as db:
            stmt = insert(runs).returning(runs.c.id, sort_by_parameter_order=True)
            ids = [int(i) for i in db.execute(stmt, [_run_row(run, junit) for run, junit in batch]).scalars()]
            test_rows = [
                {"run": row, "suite": t.suite, "test": t.test, "name": t.name, "outcome": t.outcome,
                 "seconds": t.seconds, "message": t.message, "details": _details(t)}
                for row, (run, _) in zip(ids, batch, strict=True)
                for t in run.tests
            ]  # fmt: skip
            if test_rows and db.dialect.name == "postgresql":
                _copy(db, test_rows)
            elif test_rows:
                db.execute(insert(tests), test_rows)
            tallies = _tallies(batch, ids)
            if tallies:
                upsert = _insert_for(db)(test_stats)
                newest = func.greatest if db.dialect.name == "postgresql" else func.max
                db.execute(
                    upsert.on_conflict_do_update(
                        index_elements=["device_type", "image_sha256", "suite", "test"],
                        set_={
                            "passed": test_stats.c.passed + upsert.excluded.passed,
                            "failed": test_stats.c.failed + upsert.excluded.failed,
                            "skipped": test_stats.c.skipped + upsert.excluded.skipped,
                            "last_run": newest(test_stats.c.last_run, upsert.excluded.last_run),
                        },
                    ),
                    tallies,
                )
            db.execute(delete(running).where(running.c.run_id.in_([run.run_id for run, _ in batch])))
            return ids
    except IntegrityError:
        raise HilError(f"a run of this batch is already recorded in {store.where}") from None


def _run_row(run: Run, junit: bytes) -> dict[str, Any]:
    """The runs row RunStore.record writes for `run`."""
    suites: dict[str, float] = {}
    for t in run.tests:
        suites[t.suite] = suites.get(t.suite, 0.0) + t.seconds
    facts = {**asdict(run.facts), "suites": suites}
    row = {
        "run_id": run.run_id, "started": run.started, "finished": run.finished, "rig": run.rig,
        "device_type": run.device_type, "image": run.image, "image_sha256": run.image_sha256,
        "os_version": run.os_version, "os_profile": run.os_profile, "exitstatus": run.exitstatus,
        "passed": run.passed, "failed": run.failed, "skipped": run.skipped, "seconds": run.seconds,
        "boot_seconds": run.boot_seconds, "facts": json.dumps(facts), "junit_path": run.junit_path,
        "junit": zlib.compress(junit, 6), "junit_sha256": run.junit_sha256,
    }  # fmt: skip
    # The CI build, once runs carry one; until then the column's default ('').
    row["build_tag"] = getattr(run, "build_tag", "") or ""
    return row


def _copy(db: Connection, rows: list[dict[str, Any]]) -> None:
    """The tests rows through PostgreSQL's COPY, in the transaction's own connection: the same values as
    the INSERT, several times faster than one INSERT per row."""
    columns = list(rows[0])
    cursor = db.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY tests ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def _tallies(batch: Sequence[tuple[Run, bytes]], ids: list[int]) -> list[dict[str, Any]]:
    """The per-image test tallies the batch adds: one row per key, its outcomes summed, its newest run."""
    found: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row, (run, _) in zip(ids, batch, strict=True):
        if not (run.image_sha256 and run.tests):  # as record(): a session that flashed no image
            continue
        for t in run.tests:
            key = (run.device_type, run.image_sha256, t.suite, t.test)
            tally = found.setdefault(key, {
                "device_type": key[0], "image_sha256": key[1], "suite": key[2], "test": key[3],
                "passed": 0, "failed": 0, "skipped": 0, "last_run": row,
            })  # fmt: skip
            tally["passed"] += int(t.outcome == PASSED)
            tally["failed"] += int(t.failing)
            tally["skipped"] += int(t.outcome == SKIPPED)
            tally["last_run"] = max(tally["last_run"], row)
    return list(found.values())
