"""Rig pools: lease the first free, healthy rig of a device type, and remember which rigs are unhealthy.

A pool is named by rig files (`pool: NAME`) and by `rigs/pools.yaml`; all its rigs share one device type.
A rig is leased under one name per board it can run at once: a physical rig has one board, so its lease
is its name; a virtual rig with `instances: N` has N leases, `NAME#0` .. `NAME#N-1`, so N workers on one
agent can boot N boards of one definition (each board already takes its own ports and disks).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hil import yamlconf
from hil.errors import LeaseError, RigConfigError
from hil.locking import Lease, holder
from hil.paths import cache_dir, project_dirs
from hil.rig import Rig, available, load_rig

log = logging.getLogger("hil.pool")

POOL_PREFIX = "pool:"
INSTANCE_SEP = "#"
_POLL = 0.5


@dataclass(frozen=True)
class Health:
    """A rig's last health check: its verdict, when, and why."""

    healthy: bool
    checked: datetime
    reason: str

    def __str__(self) -> str:
        verdict = "healthy" if self.healthy else f"unhealthy ({self.reason})"
        return f"{verdict}, checked {self.checked.isoformat(timespec='seconds')}"


def health_dir() -> Path:
    """Where health records live: <cache>/health, beside the leases."""
    return cache_dir() / "health"


def record_health(rig: str, healthy: bool, reason: str = "") -> Health:
    """Record the outcome of `hil rig check` for a rig; an unhealthy rig is skipped by pools."""
    record = Health(healthy, datetime.now(UTC), reason)
    folder = health_dir()
    folder.mkdir(parents=True, exist_ok=True)
    data = {"healthy": healthy, "checked": record.checked.isoformat(), "reason": reason}
    tmp = folder / f".{rig}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, folder / f"{rig}.json")  # a pool reading at the same moment sees old or new, never half
    return record


def health(rig: str) -> Health | None:
    """The rig's last recorded health, or None when it was never checked."""
    path = health_dir() / f"{rig}.json"
    try:
        data = json.loads(path.read_text())
        return Health(bool(data["healthy"]), datetime.fromisoformat(data["checked"]), str(data["reason"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # A record nobody can read proves nothing: keep the rig out until it is checked again.
        return Health(False, datetime.fromtimestamp(path.stat().st_mtime, UTC), f"unreadable {path}: {exc}")


class _PoolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rigs: list[str] = Field(default_factory=list)
    description: str = ""


@dataclass(frozen=True)
class Pool:
    """A named set of interchangeable rigs of one device type."""

    name: str
    rigs: tuple[Rig, ...]
    description: str = ""

    @property
    def device_type(self) -> str:
        """The device type every rig of the pool has."""
        return self.rigs[0].device_type


def pools() -> dict[str, Pool]:
    """Every pool, from pools.yaml files and rig files' `pool:` fields (rigs listed first come first)."""
    members: dict[str, list[Rig]] = {}
    descriptions: dict[str, str] = {}
    where: dict[str, str] = {}
    for path in _pool_files():
        data, lines = yamlconf.read_yaml(path, RigConfigError)
        specs = yamlconf.validate(dict[str, _PoolSpec], data or {}, lines, path, RigConfigError)
        rigs = available()
        for name, spec in specs.items():
            if name in members:
                continue  # earlier rig directories win, as they do for rigs
            for i, rig_name in enumerate(spec.rigs):
                if rig_name not in rigs:
                    raise RigConfigError(
                        f"{path}:{lines[(name, 'rigs', i)]}: {name}.rigs.{i}: unknown rig {rig_name!r}"
                    )
            members[name] = [load_rig(rigs[r]) for r in spec.rigs]
            descriptions[name], where[name] = spec.description, f"{path}:{lines[(name,)]}"
    for rig_path in available().values():
        rig = load_rig(rig_path)
        name = getattr(rig.spec, "pool", None)
        if name and rig.name not in {r.name for r in members.get(name, [])}:
            members.setdefault(name, []).append(rig)
            where.setdefault(name, str(rig.path))
    found = {}
    for name, rigs in members.items():
        types = {r.device_type for r in rigs}
        if len(types) > 1:
            listed = ", ".join(f"{r.name} ({r.device_type})" for r in rigs)
            raise RigConfigError(f"{where[name]}: pool {name} mixes device types: {listed}")
        if not rigs:
            raise RigConfigError(f"{where[name]}: pool {name} has no rigs")
        found[name] = Pool(name, tuple(rigs), descriptions.get(name, ""))
    return found


def load_pool(name: str) -> Pool:
    """A pool by name, or RigConfigError listing the known pools."""
    known = pools()
    if name not in known:
        raise RigConfigError(f"unknown pool {name!r}; known pools: {', '.join(sorted(known)) or 'none'}")
    return known[name]


def lease_names(rig: Rig) -> list[str]:
    """The names a rig is leased under: its own, or one per instance of a virtual rig."""
    count = getattr(rig.spec, "instances", 1)
    return [rig.name] if count == 1 else [f"{rig.name}{INSTANCE_SEP}{i}" for i in range(count)]


def rig_for(arg: str) -> Rig:
    """The rig definition a --rig argument names (a pool's first rig), without leasing anything."""
    return _candidates(arg)[0][0]


def lease_rig(arg: str, wait: float = 0.0) -> tuple[Rig, Lease]:
    """Lease what --rig names: NAME or PATH, NAME#INSTANCE, or pool:NAME; wait up to `wait` seconds."""
    candidates = _candidates(arg)
    from_pool = arg.startswith(POOL_PREFIX)
    deadline = time.monotonic() + wait
    waiting = False
    while True:
        sick = {r.name: h for r, _ in candidates if from_pool and (h := health(r.name)) and not h.healthy}
        usable = [(rig, name) for rig, name in candidates if rig.name not in sick]
        if not usable:
            raise LeaseError(f"{arg}: no healthy rig; {_unhealthy(sick)}; `hil rig check NAME` re-checks one")
        for rig, name in usable:
            try:
                return rig, Lease(name).acquire()
            except LeaseError:
                continue
        if time.monotonic() >= deadline:
            raise LeaseError(_busy(arg, usable, sick, wait))
        if not waiting:
            log.warning("%s: every rig is leased; waiting up to %.0f s for one", arg, wait)
            waiting = True
        time.sleep(_POLL)


def _candidates(arg: str) -> list[tuple[Rig, str]]:
    """(rig, lease name) pairs an argument may be leased as, in the order they are tried."""
    if arg.startswith(POOL_PREFIX):
        return [(rig, n) for rig in load_pool(arg.removeprefix(POOL_PREFIX)).rigs for n in lease_names(rig)]
    base, sep, instance = arg.rpartition(INSTANCE_SEP)
    if sep and instance.isdigit() and os.sep not in arg:
        rig = load_rig(base)
        if f"{rig.name}{INSTANCE_SEP}{instance}" not in lease_names(rig):
            raise RigConfigError(
                f"rig {rig.name} has no instance {instance}; it has {', '.join(lease_names(rig))}"
            )
        return [(rig, f"{rig.name}{INSTANCE_SEP}{instance}")]
    rig = load_rig(arg)
    return [(rig, n) for n in lease_names(rig)]


def _pool_files() -> list[Path]:
    return [d / "pools.yaml" for d in project_dirs("rigs", "HIL_RIGS_DIR") if (d / "pools.yaml").is_file()]


def _unhealthy(sick: dict[str, Health]) -> str:
    return "unhealthy: " + ", ".join(
        f"{name} ({h.reason or 'no reason given'}, checked {h.checked.isoformat(timespec='seconds')})"
        for name, h in sick.items()
    )


def _busy(arg: str, usable: list[tuple[Rig, str]], sick: dict[str, Health], wait: float) -> str:
    held = "; ".join(f"{name} is leased by {holder(name) or 'nobody (just freed)'}" for _, name in usable)
    skipped = f"; {_unhealthy(sick)}" if sick else ""
    return f"{arg}: no free rig after waiting {wait:.0f} s: {held}{skipped}"
