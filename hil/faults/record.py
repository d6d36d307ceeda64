"""Fault matrices in the store, and the recorded healthy run that may stand as a fault run's control."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Select, func, insert, select, tuple_

from hil.faults.matrix import Cell, Matrix
from hil.results.model import PASSED
from hil.store.db import Database
from hil.store.schema import fault_matrices, runs, tests
from hil.store.url import StoreUrl

# How many of an image's recorded runs are looked through for a healthy control.
CONTROL_LOOKBACK = 50


class FaultStore:
    """Fault matrices by image and OS profile, in the store runs and releases live in."""

    def __init__(self, store: str | Path | StoreUrl | None = None) -> None:
        self.db = Database(store)
        self.where = self.db.where

    def record(self, matrix: Matrix) -> int:
        """Keep a finished matrix; its number."""
        with self.db.transaction() as db:
            key = db.execute(insert(fault_matrices).values(
                started=matrix.started, finished=matrix.finished, rig=matrix.rig,
                device_type=matrix.device_type, image=matrix.image, image_sha256=matrix.image_sha256,
                os_profile=matrix.os_profile, control=matrix.control, caught=matrix.caught,
                applicable=len(matrix.applicable), cells=json.dumps(matrix.cells_json()),
            )).inserted_primary_key  # fmt: skip
        return int(key[0]) if key else 0

    def latest(self, limit: int = 100) -> list[Matrix]:
        """The newest matrix of each image and OS profile, newest first (the `limit` newest of those)."""
        newest = (
            select(func.max(fault_matrices.c.id))
            .group_by(fault_matrices.c.image_sha256, fault_matrices.c.os_profile)
            .scalar_subquery()
        )
        query = (
            select(fault_matrices).where(fault_matrices.c.id.in_(newest))
            .order_by(fault_matrices.c.id.desc()).limit(limit)
        )  # fmt: skip
        return self._matrices(query)

    def history(self, limit: int = 500) -> list[Matrix]:
        """Matrices oldest first (the last `limit`), for scores over time."""
        query = select(fault_matrices).order_by(fault_matrices.c.id.desc()).limit(limit)
        return list(reversed(self._matrices(query)))

    def get(self, number: int) -> Matrix | None:
        """The matrix `number` (its row, as `record` returned it), or None when there is none."""
        found = self._matrices(select(fault_matrices).where(fault_matrices.c.id == number))
        return found[0] if found else None

    def newest(self) -> int:
        """The newest matrix's number (0: none): matrices are only added, so it names the store's state."""
        with self.db.transaction(read_only=True) as db:
            return int(db.execute(select(func.max(fault_matrices.c.id))).scalar() or 0)

    def _matrices(self, query: Select) -> list[Matrix]:
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(query).mappings().all()
        return [
            Matrix(
                rig=r["rig"], device_type=r["device_type"], image=r["image"],
                image_sha256=r["image_sha256"], os_profile=r["os_profile"], control=r["control"],
                started=r["started"], finished=r["finished"], id=r["id"],
                cells=[Cell(**{**c, "also_failed": tuple(c["also_failed"])}) for c in json.loads(r["cells"])],
            )
            for r in rows
        ]  # fmt: skip

    def healthy_run(self, image_sha256: str, wanted: set[tuple[str, str]]) -> str | None:
        """A recorded run of this image (among its newest CONTROL_LOOKBACK) in which every (suite, test) of
        `wanted` passed, newest; its id. One query: the runs whose passed tests include all of `wanted`."""
        if not wanted:
            return None
        newest = (
            select(runs.c.id).where(runs.c.image_sha256 == image_sha256)
            .order_by(runs.c.id.desc()).limit(CONTROL_LOOKBACK).subquery()
        )  # fmt: skip
        named = tests.c.suite + "\n" + tests.c.test  # a test id has no newline: one value per (suite, test)
        query = (
            select(runs.c.run_id)
            .join(tests, tests.c.run == runs.c.id)
            .where(
                runs.c.id.in_(select(newest.c.id)),
                tests.c.outcome == PASSED,
                tuple_(tests.c.suite, tests.c.test).in_(sorted(wanted)),
            )
            .group_by(runs.c.id, runs.c.run_id)
            .having(func.count(func.distinct(named)) == len(wanted))
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        with self.db.transaction(read_only=True) as db:
            found = db.execute(query).scalar()
        return str(found) if found is not None else None
