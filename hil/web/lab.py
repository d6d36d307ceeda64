"""The rigs as the lab sees them: kind, device type, who holds each lease since when, their last check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hil.errors import HilError
from hil.lab.pool import Health, health, leases
from hil.lab.rig import available, load_rig
from hil.util.paths import cache_dir


@dataclass(frozen=True)
class RigRow:
    """One rig's line on the rigs page."""

    name: str
    kind: str
    device_type: str
    holders: tuple[tuple[str, str, str], ...]  # (lease, holder, since)
    health: Health | None
    check_log: Path | None  # the console transcript of its last `hil rig check`
    error: str = ""  # why the rig file does not load


def rig_rows() -> list[RigRow]:
    """Every rig hil finds, in name order; a rig file that does not load is shown with its error."""
    rows = []
    for name in sorted(available()):
        log = cache_dir() / "rig-logs" / name / "console.log"
        check_log = log if log.is_file() else None
        try:
            rig = load_rig(name)
        except HilError as exc:
            rows.append(RigRow(name, "?", "?", (), health(name), check_log, str(exc)))
            continue
        holders = []
        for lease in leases(rig):
            if held := lease.holder():
                alias = f" as {held.lease}" if held.lease and held.lease != lease.rig_name else ""
                since = held.since.isoformat(timespec="seconds")
                holders.append((lease.rig_name, f"{held.host}:{held.pid}{alias}", since))
        rows.append(RigRow(name, rig.kind, rig.device_type, tuple(holders), health(name), check_log))
    return rows
