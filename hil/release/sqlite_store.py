"""The embedded release store: one sqlite file holding releases, the image each ships by content hash,
and the evidence of every gate decision."""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from hil.errors import GateRefused, HilError
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
from hil.store.db import Database
from hil.store.db import default_store_path as default_store_path  # where it always was

_INSERT = (
    "INSERT INTO releases (version, device_types, status, created, images) "
    "VALUES (?, ?, ?, ?, ?) RETURNING id"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SqliteStore:
    """Releases in a sqlite file; each write is one transaction, so concurrent gates finalize at most once."""

    def __init__(self, path: Path | None = None) -> None:
        self.db = Database(path)
        self.path = self.db.path

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.db.transaction()

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
        with self.db.transaction(read_only=True) as db:
            rows = db.execute("SELECT * FROM releases ORDER BY id DESC").fetchall()
            return [_release(row) for row in rows]

    def get(self, release_id: str) -> Release:
        """The release with `release_id`."""
        with self.db.transaction(read_only=True) as db:
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
        with self.db.transaction(read_only=True) as db:
            release = self._get(db, release_id)
            rows = db.execute(
                "SELECT id, evidence FROM decisions WHERE release_id = ? ORDER BY id", (int(release.id),)
            ).fetchall()
            return [{"id": row["id"], **json.loads(row["evidence"])} for row in rows]

    def latest_decisions(self) -> dict[str, dict]:
        """Each release's newest decision: verdict, outcome and when (no evidence), by release id."""
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(
                "SELECT release_id, verdict, outcome, decided_at FROM decisions "
                "WHERE id IN (SELECT max(id) FROM decisions GROUP BY release_id)"
            ).fetchall()
        return {str(row["release_id"]): dict(row) for row in rows}

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
