"""The lab in hil's store: every agent's `hil rig check` (`rig_checks`) and who holds each lease
(`leases`), so one dashboard shows the whole lab.

These rows are a mirror for looking, never what hil decides by: a rig's health file and its lease's flock
on the rig's own host stay the truth (a card half-written must keep a pool away even while the store is
down). So writing here never fails what it mirrors: a store that cannot be reached is one warning line
(once per process and store) and the check or the lease goes on.
"""

from __future__ import annotations

import logging
import socket
import threading
import zlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from hil.errors import HilError
from hil.lab.locking import STALE_AFTER
from hil.store.db import Database
from hil.store.schema import leases, rig_checks
from hil.store.url import StoreUrl, store_url

log = logging.getLogger("hil.lab.store")

# What the store keeps of a check's console: its end, where the failure is.
CONSOLE_KEPT = 1 << 20
# Errors that mean "the store cannot be used now": hil's one-line store errors, the driver's, the disk's.
STORE_ERRORS = (HilError, SQLAlchemyError, OSError)
_warned: set[str] = set()
_warned_lock = threading.Lock()


@dataclass(frozen=True)
class CheckRow:
    """One `hil rig check` as the store has it (its console is read on its own: `LabStore.console`)."""

    id: int
    rig: str
    host: str
    checked_at: datetime
    healthy: bool
    reason: str
    has_console: bool


@dataclass(frozen=True)
class LeaseRow:
    """Who holds a lease (a rig, or one instance `NAME#I` of a virtual rig), as its holder last said."""

    rig: str
    host: str
    pid: int
    holder: str
    since: datetime
    heartbeat: datetime

    def stale(self, now: datetime | None = None, after: float = STALE_AFTER) -> bool:
        """Whether the holder has not beaten for `after` seconds: it may be gone, so not shown as held."""
        return (now or datetime.now(UTC)) - self.heartbeat > timedelta(seconds=after)


class LabStore:
    """Rig checks and the lease mirror in one store (hil.store: sqlite or PostgreSQL)."""

    def __init__(self, store: str | Path | StoreUrl | None = None) -> None:
        self.db = Database(store)

    @property
    def where(self) -> str:
        """The store as messages show it (a URL's password masked)."""
        return self.db.where

    def record_check(self, rig: str, healthy: bool, reason: str, checked_at: datetime,
                     console: bytes | None = None, host: str | None = None) -> int:  # fmt: skip
        """Keep one check (its console's last CONSOLE_KEPT bytes, zlib); its row number."""
        packed = zlib.compress(console[-CONSOLE_KEPT:]) if console else None
        row = {"rig": rig, "host": host or socket.gethostname(), "checked_at": _text(checked_at),
               "healthy": int(healthy), "reason": reason, "console": packed}  # fmt: skip
        with self.db.transaction() as db:
            return int(db.execute(rig_checks.insert().values(**row).returning(rig_checks.c.id)).scalar_one())

    def latest_checks(self) -> dict[str, CheckRow]:
        """Each rig's newest check, from whichever agent ran it."""
        newest = select(func.max(rig_checks.c.id)).group_by(rig_checks.c.rig).scalar_subquery()
        columns = [c for c in rig_checks.c if c.name != "console"]
        query = select(*columns, rig_checks.c.console.is_not(None).label("has_console"))
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(query.where(rig_checks.c.id.in_(newest))).mappings().all()
        return {row["rig"]: _check(row) for row in rows}

    def checks(self, rig: str, limit: int = 20) -> list[CheckRow]:
        """A rig's newest checks, newest first."""
        columns = [c for c in rig_checks.c if c.name != "console"]
        query = select(*columns, rig_checks.c.console.is_not(None).label("has_console"))
        query = query.where(rig_checks.c.rig == rig).order_by(rig_checks.c.id.desc()).limit(limit)
        with self.db.transaction(read_only=True) as db:
            return [_check(row) for row in db.execute(query).mappings()]

    def console(self, check_id: int) -> tuple[CheckRow, bytes] | None:
        """A check and the console it saw (b"" when it kept none), or None when there is no such check."""
        query = select(*rig_checks.c, rig_checks.c.console.is_not(None).label("has_console"))
        with self.db.transaction(read_only=True) as db:
            row = db.execute(query.where(rig_checks.c.id == check_id)).mappings().first()
        if row is None:
            return None
        return _check(row), zlib.decompress(row["console"]) if row["console"] is not None else b""

    def hold(self, row: LeaseRow) -> None:
        """Say that `row.host:row.pid` holds the lease as of its heartbeat (replacing a gone holder's row)."""
        values = {"host": row.host, "pid": row.pid, "holder": row.holder, "since": _text(row.since),
                  "heartbeat": _text(row.heartbeat)}  # fmt: skip
        with self.db.transaction() as db:
            stmt = _insert(db)(leases).values(rig=row.rig, **values)
            db.execute(stmt.on_conflict_do_update(index_elements=["rig"], set_=values))

    def drop(self, row: LeaseRow) -> None:
        """The holder let go: remove its row, and only its (a newer holder's row stays)."""
        mine = and_(leases.c.rig == row.rig, leases.c.host == row.host, leases.c.pid == row.pid,
                    leases.c.since == _text(row.since))  # fmt: skip
        with self.db.transaction() as db:
            db.execute(delete(leases).where(mine))

    def leases(self) -> list[LeaseRow]:
        """Every mirrored lease, by lease name (stale ones too: `LeaseRow.stale` says which)."""
        with self.db.transaction(read_only=True) as db:
            rows = db.execute(select(leases).order_by(leases.c.rig)).mappings().all()
        return [
            LeaseRow(r["rig"], r["host"], r["pid"], r["holder"], _time(r["since"]), _time(r["heartbeat"]))
            for r in rows
        ]


def mirror_check(rig: str, healthy: bool, reason: str, checked_at: datetime, console: bytes | None) -> None:
    """Copy one check into the default store; a store that cannot be used is one warning, never an error."""
    try:
        LabStore().record_check(rig, healthy, reason, checked_at, console)
    except STORE_ERRORS as exc:
        warn_once(None, f"rig check of {rig} kept on this host only: the store cannot be used ({exc})")


def beat(row: LeaseRow) -> LeaseRow:
    """The row with its heartbeat now."""
    return replace(row, heartbeat=datetime.now(UTC))


def warn_once(store: str | Path | None, message: str) -> None:
    """Log `message` as a warning the first time this process finds `store` unusable (later: debug)."""
    try:
        where = store_url(store).shown
    except HilError:
        where = str(store)
    with _warned_lock:
        first = where not in _warned
        _warned.add(where)
    log.log(logging.WARNING if first else logging.DEBUG, "%s", message)


def _check(row: RowMapping) -> CheckRow:
    return CheckRow(row["id"], row["rig"], row["host"], _time(row["checked_at"]), bool(row["healthy"]),
                    row["reason"], bool(row["has_console"]))  # fmt: skip


def _insert(db: Connection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (sqlite and PostgreSQL spell it alike)."""
    return postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert


def _text(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def _time(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
