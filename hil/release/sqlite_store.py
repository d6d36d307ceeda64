"""The embedded release store: one sqlite file holding releases and the evidence of every gate decision."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from hil.errors import GateRefused, HilError
from hil.paths import cache_dir
from hil.release.store import (
    ALREADY_FINAL,
    DRAFT,
    FINAL,
    FINALIZED,
    INVALIDATED,
    Release,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    device_types TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'final', 'invalidated')),
    created TEXT NOT NULL,
    finalized_at TEXT
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    release_id INTEGER NOT NULL REFERENCES releases(id),
    decided_at TEXT NOT NULL,
    who TEXT NOT NULL,
    verdict TEXT NOT NULL,
    outcome TEXT NOT NULL,
    policy_sha256 TEXT NOT NULL,
    evidence TEXT NOT NULL
);
"""


def default_store_path() -> Path:
    """$HIL_RELEASE_STORE, else releases.sqlite in hil's cache directory."""
    env = os.environ.get("HIL_RELEASE_STORE")
    return Path(env) if env else cache_dir() / "releases.sqlite"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SqliteStore:
    """Releases in a sqlite file; each write is one transaction, so concurrent gates finalize at most once."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path or default_store_path())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as db:
            for statement in _SCHEMA.split(";"):
                db.execute(statement)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock first: a second gate waits, then sees the first's commit."""
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise HilError(f"release store {self.path}: cannot open ({exc})") from exc
        with closing(conn):
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def create(self, version: str, device_types: list[str]) -> Release:
        """A new draft release of `version` for `device_types`."""
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO releases (version, device_types, status, created) VALUES (?, ?, ?, ?)",
                (version, json.dumps(sorted(set(device_types))), DRAFT, _now()),
            )
            return self._get(db, str(cur.lastrowid))

    def find_or_create_draft(self, version: str, device_types: list[str]) -> Release:
        """The newest non-invalidated release of `version` for exactly `device_types`, else a new draft."""
        wanted = json.dumps(sorted(set(device_types)))
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM releases WHERE version = ? AND device_types = ? AND status != ? "
                "ORDER BY id DESC LIMIT 1",
                (version, wanted, INVALIDATED),
            ).fetchone()
            if row is None:
                row = db.execute(
                    "INSERT INTO releases (version, device_types, status, created) VALUES (?, ?, ?, ?) "
                    "RETURNING id",
                    (version, wanted, DRAFT, _now()),
                ).fetchone()
            return self._get(db, str(row["id"]))

    def releases(self) -> list[Release]:
        """Every release, newest first."""
        with self._transaction() as db:
            rows = db.execute("SELECT * FROM releases ORDER BY id DESC").fetchall()
            return [_release(row) for row in rows]

    def get(self, release_id: str) -> Release:
        """The release with `release_id`."""
        with self._transaction() as db:
            return self._get(db, release_id)

    def _get(self, db: sqlite3.Connection, release_id: str) -> Release:
        row = db.execute("SELECT * FROM releases WHERE id = ?", (_int_id(release_id),)).fetchone()
        if row is None:
            raise HilError(f"release {release_id} is not in {self.path} (see `hil release list`)")
        return _release(row)

    def finalize(self, release_id: str, evidence: dict) -> str:
        """Draft -> final with the evidence, in one transaction; a final release is left alone and says so."""
        with self._transaction() as db:
            release = self._get(db, release_id)
            if release.status == INVALIDATED:
                raise GateRefused(f"release {release_id} is invalidated; it cannot become final")
            outcome = ALREADY_FINAL if release.status == FINAL else FINALIZED
            if outcome == FINALIZED:
                db.execute(
                    "UPDATE releases SET status = ?, finalized_at = ? WHERE id = ? AND status = ?",
                    (FINAL, _now(), release.id, DRAFT),
                )
            self._insert(db, release_id, {**evidence, "outcome": outcome})
            return outcome

    def record(self, release_id: str, evidence: dict) -> None:
        """Keep the evidence of a decision that did not finalize."""
        with self._transaction() as db:
            self._get(db, release_id)
            self._insert(db, release_id, evidence)

    def evidence(self, release_id: str) -> list[dict]:
        """Every recorded decision for the release, oldest first."""
        with self._transaction() as db:
            self._get(db, release_id)
            rows = db.execute(
                "SELECT id, evidence FROM decisions WHERE release_id = ? ORDER BY id", (_int_id(release_id),)
            ).fetchall()
            return [{"id": row["id"], **json.loads(row["evidence"])} for row in rows]

    @staticmethod
    def _insert(db: sqlite3.Connection, release_id: str, evidence: dict) -> None:
        db.execute(
            "INSERT INTO decisions (release_id, decided_at, who, verdict, outcome, policy_sha256, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                _int_id(release_id),
                evidence["decided_at"],
                evidence["who"],
                evidence["decision"]["verdict"],
                evidence["outcome"],
                evidence["policy"]["sha256"],
                json.dumps(evidence, sort_keys=True),
            ),
        )


def _int_id(release_id: str) -> int:
    try:
        return int(release_id)
    except ValueError:
        raise HilError(f"release id '{release_id}' is not a number (see `hil release list`)") from None


def _release(row: sqlite3.Row) -> Release:
    return Release(
        id=str(row["id"]),
        version=row["version"],
        device_types=tuple(json.loads(row["device_types"])),
        status=row["status"],
        created=row["created"],
        finalized_at=row["finalized_at"],
    )
