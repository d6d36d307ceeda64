"""The rigs as the whole lab sees them: every rig this host has a file for or the store has heard of, its
newest `hil rig check` from any agent, and who holds each of its leases.

Leases come from the store's mirror (every agent's holders, with their heartbeat; a row not refreshed for
STALE_AFTER seconds is stale, never held) and from this host's own locks, which a holder whose mirror
failed still has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hil.errors import HilError
from hil.lab.lab_store import CheckRow, LabStore, LeaseRow
from hil.lab.locking import STALE_AFTER
from hil.lab.pool import INSTANCE_SEP, Health, health, leases
from hil.lab.rig import available, load_rig


@dataclass(frozen=True)
class LeaseView:
    """One held (or stale) lease of a rig, as a line of the rigs page."""

    lease: str
    host: str
    pid: int
    holder: str
    since: str
    heartbeat: str  # "" for a lock seen on this host that the store does not show
    stale: bool


@dataclass(frozen=True)
class RigRow:
    """One rig's line on the rigs page."""

    name: str
    kind: str
    device_type: str
    leases: tuple[LeaseView, ...]
    check: CheckRow | None  # its newest check in the store, from whichever agent ran it
    health: Health | None  # this host's health file: shown when the store has no check of the rig
    error: str = ""  # why the rig file does not load
    local: bool = True  # whether this host has a file for the rig


def rig_rows(store: LabStore, now: datetime | None = None, stale_after: float = STALE_AFTER) -> list[RigRow]:
    """Every rig, in name order; a rig file that does not load is shown with its error."""
    now = now or datetime.now(UTC)
    checks = store.latest_checks()
    mirrored: dict[str, list[LeaseRow]] = {}
    for row in store.leases():
        mirrored.setdefault(rig_of(row.rig), []).append(row)
    files = available()
    rows = []
    for name in sorted(set(files) | set(checks) | set(mirrored)):
        views = [_view(row, now, stale_after) for row in mirrored.get(name, [])]
        check = checks.get(name)
        if name not in files:
            rows.append(RigRow(name, "-", "-", tuple(views), check, None, local=False))
            continue
        try:
            rig = load_rig(name)
        except HilError as exc:
            rows.append(RigRow(name, "?", "?", tuple(views), check, health(name), str(exc)))
            continue
        seen = {(v.lease, v.host, v.pid) for v in views}
        for lease in leases(rig):
            held = lease.holder()
            if held is not None and (lease.rig_name, held.host, held.pid) not in seen:
                alias = f"as {held.lease}" if held.lease and held.lease != lease.rig_name else ""
                since = held.since.isoformat(timespec="seconds")
                views.append(LeaseView(lease.rig_name, held.host, held.pid, alias, since, "", False))
        rows.append(RigRow(name, rig.kind, rig.device_type, tuple(views), check, health(name)))
    return rows


def rig_of(lease: str) -> str:
    """The rig a lease name belongs to: `NAME` for `NAME#I`, an instance of a virtual rig."""
    base, sep, instance = lease.rpartition(INSTANCE_SEP)
    return base if sep and instance.isdigit() else lease


def _view(row: LeaseRow, now: datetime, stale_after: float) -> LeaseView:
    return LeaseView(row.rig, row.host, row.pid, row.holder, row.since.isoformat(timespec="seconds"),
                     row.heartbeat.isoformat(timespec="seconds"), row.stale(now, stale_after))  # fmt: skip
