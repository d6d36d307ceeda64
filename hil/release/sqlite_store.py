"""The embedded release store: one sqlite file holding releases, the image each ships by content hash,
and the evidence of every gate decision."""

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
    ReleaseImage,
    checked_device_type,
    checked_version,
    release_id,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    device_types TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'final', 'invalidated')),
    created TEXT NOT NULL,
    finalized_at TEXT,
    images TEXT NOT NULL DEFAULT '{}'
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
)
"""

_INSERT = (
    "INSERT INTO releases (version, device_types, status, created, images) "
    "VALUES (?, ?, ?, ?, ?) RETURNING id"
)


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
        # A mistyped --store must not quietly start an empty store somewhere new.
        if not self.path.parent.is_dir():
            raise HilError(f"release store {self.path}: folder {self.path.parent} does not exist")
        if self.path.exists() and not self.path.is_file():
            raise HilError(f"release store {self.path} is not a file")
        with self._transaction() as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "releases" not in tables:
                raise HilError(f"release store {self.path} is a sqlite database of something else")
            for statement in _SCHEMA.split(";"):
                db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(releases)")}
            if "images" not in columns:  # a store from before releases named their images
                db.execute("ALTER TABLE releases ADD COLUMN images TEXT NOT NULL DEFAULT '{}'")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock first: a second gate waits, then sees the first's commit."""
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise HilError(f"release store {self.path}: cannot open ({exc})") from None
        with closing(conn):
            try:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise HilError(f"release store {self.path} is not a usable release store ({exc})") from None
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise HilError(f"release store {self.path}: {exc}") from None
            except BaseException:
                _rollback(conn)
                raise

    def create(self, version: str, images: dict[str, ReleaseImage]) -> Release:
        """A new draft release of `version`, shipping `images` (device type -> image)."""
        with self._transaction() as db:
            row = db.execute(
                _INSERT, (*_columns(version, images), DRAFT, _now(), _images_json(images))
            ).fetchone()
            return self._get(db, str(row["id"]))

    def find_or_create_draft(self, version: str, images: dict[str, ReleaseImage]) -> Release:
        """The newest release of `version` shipping exactly these images (by hash), else a new draft.

        A release of that version already final with other images refuses: one version, one set of images.
        """
        version, device_types = _columns(version, images)
        wanted = {dt: image.sha256 for dt, image in images.items()}
        with self._transaction() as db:
            rows = db.execute(
                "SELECT * FROM releases WHERE version = ? AND device_types = ? AND status != ? "
                "ORDER BY id DESC",
                (version, device_types, INVALIDATED),
            ).fetchall()
            for row in rows:
                release = _release(row)
                if {dt: image.sha256 for dt, image in release.images.items()} == wanted:
                    return release
            final = next((_release(r) for r in rows if r["status"] == FINAL), None)
            if final is not None:
                raise GateRefused(
                    f"release {final.id} of version {version} is already final with other images; "
                    "give this image a new version, or invalidate that release"
                )
            row = db.execute(_INSERT, (version, device_types, DRAFT, _now(), _images_json(images))).fetchone()
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

    def _get(self, db: sqlite3.Connection, text_id: str) -> Release:
        row = db.execute("SELECT * FROM releases WHERE id = ?", (release_id(text_id),)).fetchone()
        if row is None:
            raise HilError(f"release {text_id} is not in {self.path} (see `hil release list`)")
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
                    (FINAL, _now(), int(release.id), DRAFT),
                )
            self._insert(db, release.id, {**evidence, "outcome": outcome})
            return outcome

    def record(self, release_id: str, evidence: dict) -> None:
        """Keep the evidence of a decision that did not finalize."""
        with self._transaction() as db:
            self._insert(db, self._get(db, release_id).id, evidence)

    def evidence(self, release_id: str) -> list[dict]:
        """Every recorded decision for the release, oldest first."""
        with self._transaction() as db:
            release = self._get(db, release_id)
            rows = db.execute(
                "SELECT id, evidence FROM decisions WHERE release_id = ? ORDER BY id", (int(release.id),)
            ).fetchall()
            return [{"id": row["id"], **json.loads(row["evidence"])} for row in rows]

    @staticmethod
    def _insert(db: sqlite3.Connection, release_id: str, evidence: dict) -> None:
        db.execute(
            "INSERT INTO decisions (release_id, decided_at, who, verdict, outcome, policy_sha256, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                int(release_id),
                evidence["decided_at"],
                evidence["who"],
                evidence["decision"]["verdict"],
                evidence["outcome"],
                evidence["policy"]["sha256"],
                json.dumps(evidence, sort_keys=True),
            ),
        )


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _columns(version: str, images: dict[str, ReleaseImage]) -> tuple[str, str]:
    """The version and device types columns, validated: a release names at least one device type."""
    if not images:
        raise HilError("a release ships at least one image, for the device type it is built for")
    return checked_version(version), json.dumps(sorted(checked_device_type(dt) for dt in images))


def _images_json(images: dict[str, ReleaseImage]) -> str:
    return json.dumps({dt: {"sha256": i.sha256, "path": i.path} for dt, i in sorted(images.items())})


def _release(row: sqlite3.Row) -> Release:
    images = {dt: ReleaseImage(**image) for dt, image in json.loads(row["images"] or "{}").items()}
    return Release(
        id=str(row["id"]),
        version=row["version"],
        device_types=tuple(json.loads(row["device_types"])),
        status=row["status"],
        created=row["created"],
        finalized_at=row["finalized_at"],
        images=images,
    )
