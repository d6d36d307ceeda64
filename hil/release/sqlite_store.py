"""The release store in hil's database (hil/store/): releases, the image each ships by content hash, and
the evidence of every gate decision, in the embedded sqlite file or a lab's PostgreSQL."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from hil.errors import GateRefused, HilError
from hil.release.store import (
    ALREADY_FINAL,
    DRAFT,
    FINAL,
    FINALIZED,
    INVALIDATED,
    DecisionInterrupted,
    Release,
    ReleaseImage,
    checked_device_type,
    checked_version,
    release_id,
)
from hil.store.db import Database, StoreConnectionError
from hil.store.db import default_store_path as default_store_path  # where it always was
from hil.store.schema import decisions, releases
from hil.store.url import StoreUrl

# Writes that read first (find or create a draft) take this lock on PostgreSQL; sqlite's BEGIN IMMEDIATE
# already serializes them.
_DRAFTS_LOCK = 0x68696C01


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SqliteStore:
    """Releases in hil's database (sqlite or PostgreSQL). Finalizing is one conditional update in one
    transaction, so concurrent gates, in processes or on machines, finalize at most once."""

    def __init__(self, store: str | Path | StoreUrl | None = None) -> None:
        self.db = Database(store)
        self.path = self.db.path
        self.where = self.db.where

    def _transaction(self) -> AbstractContextManager[Connection]:
        return self.db.transaction()

    def create(self, version: str, images: dict[str, ReleaseImage]) -> Release:
        """A new draft release of `version`, shipping `images` (device type -> image)."""
        with self._transaction() as db:
            return self._get(db, str(_insert_draft(db, *_columns(version, images), images)))

    def find_or_create_draft(self, version: str, images: dict[str, ReleaseImage]) -> Release:
        """The newest release of `version` shipping exactly these images (by hash), else a new draft.

        A release of that version already final with other images refuses: one version, one set of images.
        """
        version, device_types = _columns(version, images)
        wanted = {dt: image.sha256 for dt, image in images.items()}
        with self._transaction() as db:
            self.db.serialize(db, _DRAFTS_LOCK)
            query = (
                select(releases)
                .where(releases.c.version == version, releases.c.device_types == device_types)
                .where(releases.c.status != INVALIDATED)
                .order_by(releases.c.id.desc())
            )
            rows = db.execute(query).mappings().all()
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
            return self._get(db, str(_insert_draft(db, version, device_types, images)))

    def releases(self) -> list[Release]:
        """Every release, newest first."""
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(select(releases).order_by(releases.c.id.desc())).mappings().all()
            return [_release(row) for row in rows]

    def get(self, release_id: str) -> Release:
        """The release with `release_id`."""
        with self.db.transaction(read_only=True) as db:
            return self._get(db, release_id)

    def _get(self, db: Connection, text_id: str) -> Release:
        row = db.execute(select(releases).where(releases.c.id == release_id(text_id))).mappings().first()
        if row is None:
            raise HilError(f"release {text_id} is not in {self.where} (see `hil release list`)")
        return _release(row)

    def finalize(self, release_id: str, evidence: dict) -> str:
        """Draft -> final with the evidence, in one transaction: one conditional update (final only if
        still a draft), so of concurrent gates exactly one finalizes. Every other is told ALREADY_FINAL,
        with who finalized it and when; an invalidated release refuses. A connection that drops meanwhile
        is DecisionInterrupted: the transaction never committed, so the release is as it was."""
        try:
            return self._finalize(release_id, evidence)
        except StoreConnectionError as exc:
            raise _interrupted(release_id, exc) from None

    def _finalize(self, release_id: str, evidence: dict) -> str:
        with self._transaction() as db:
            release = self._get(db, release_id)
            finalized = db.execute(
                update(releases)
                .where(releases.c.id == int(release.id), releases.c.status == DRAFT)
                .values(status=FINAL, finalized_at=_now(), finalized_by=str(evidence.get("who", "")))
            ).rowcount
            if finalized == 1:
                outcome = FINALIZED
            else:
                release = self._get(db, release_id)  # as the gate that won left it
                if release.status == INVALIDATED:
                    raise GateRefused(f"release {release_id} is invalidated; it cannot become final")
                outcome = _already_final(release)
            self._insert(db, release.id, {**evidence, "outcome": outcome})
            return outcome

    def record(self, release_id: str, evidence: dict) -> None:
        """Keep the evidence of a decision that did not finalize (DecisionInterrupted as finalize)."""
        try:
            with self._transaction() as db:
                self._insert(db, self._get(db, release_id).id, evidence)
        except StoreConnectionError as exc:
            raise _interrupted(release_id, exc) from None

    def evidence(self, release_id: str) -> list[dict]:
        """Every recorded decision for the release, oldest first."""
        with self.db.transaction(read_only=True) as db:
            release = self._get(db, release_id)
            rows = db.execute(
                select(decisions.c.id, decisions.c.evidence)
                .where(decisions.c.release_id == int(release.id))
                .order_by(decisions.c.id)
            ).all()
            return [{"id": row.id, **json.loads(row.evidence)} for row in rows]

    def latest_decisions(self) -> dict[str, dict]:
        """Each release's newest decision: verdict, outcome and when (no evidence), by release id."""
        newest = select(func.max(decisions.c.id)).group_by(decisions.c.release_id)
        query = select(
            decisions.c.release_id, decisions.c.verdict, decisions.c.outcome, decisions.c.decided_at
        )
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(query.where(decisions.c.id.in_(newest))).mappings().all()
        return {str(row["release_id"]): dict(row) for row in rows}

    @staticmethod
    def _insert(db: Connection, release_id: str, evidence: dict) -> None:
        db.execute(
            insert(decisions).values(
                release_id=int(release_id),
                decided_at=evidence["decided_at"],
                who=evidence["who"],
                verdict=evidence["decision"]["verdict"],
                outcome=evidence["outcome"],
                policy_sha256=evidence["policy"]["sha256"],
                evidence=json.dumps(evidence, sort_keys=True),
            )
        )


def _interrupted(release_id: str, exc: StoreConnectionError) -> DecisionInterrupted:
    """The one line for a connection that dropped while deciding: before COMMIT the server rolled the
    transaction back; during it, only the store can say whether it committed."""
    if exc.committing:
        return DecisionInterrupted(
            f"the store connection dropped while committing the decision on release {release_id}: it may or "
            f"may not be final ({exc.why}); `hil release show {release_id}` says which; run the gate again"
        )
    return DecisionInterrupted(
        f"the store connection dropped while deciding release {release_id}: the release is unchanged "
        f"({exc.why}); run the gate again"
    )


def _already_final(release: Release) -> str:
    """ALREADY_FINAL, saying who finalized the release and when, as far as the store knows."""
    by = f" by {release.finalized_by}" if release.finalized_by else ""
    at = f" at {release.finalized_at}" if release.finalized_at else ""
    return f"{ALREADY_FINAL}{by}{at}" if by or at else ALREADY_FINAL


def _insert_draft(db: Connection, version: str, device_types: str, images: dict[str, ReleaseImage]) -> int:
    values: dict[str, Any] = {
        "version": version, "device_types": device_types, "status": DRAFT, "created": _now(),
        "images": _images_json(images),
    }  # fmt: skip
    key = db.execute(insert(releases).values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def _columns(version: str, images: dict[str, ReleaseImage]) -> tuple[str, str]:
    """The version and device types columns, validated: a release names at least one device type."""
    if not images:
        raise HilError("a release ships at least one image, for the device type it is built for")
    return checked_version(version), json.dumps(sorted(checked_device_type(dt) for dt in images))


def _images_json(images: dict[str, ReleaseImage]) -> str:
    return json.dumps({dt: {"sha256": i.sha256, "path": i.path} for dt, i in sorted(images.items())})


def _release(row: RowMapping) -> Release:
    images = {dt: ReleaseImage(**image) for dt, image in json.loads(row["images"] or "{}").items()}
    return Release(
        id=str(row["id"]),
        version=row["version"],
        device_types=tuple(json.loads(row["device_types"])),
        status=row["status"],
        created=row["created"],
        finalized_at=row["finalized_at"],
        images=images,
        finalized_by=row["finalized_by"],
    )
