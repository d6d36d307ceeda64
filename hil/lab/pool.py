"""Rig pools: lease the first free, healthy rig of a device type, and remember which rigs are unhealthy.

A pool is named by rig files (`pool: NAME`) and by `rigs/pools.yaml`; all its rigs share one device type.
A rig is leased under one name per board it can run at once: a physical rig has one board, so its lease
is its name; a virtual rig with `instances: N` has N leases, `NAME#0` .. `NAME#N-1`, so N workers on one
agent can boot N boards of one definition (each board already takes its own ports and disks).
A physical or twin rig's lease locks its hardware (card reader, console line), not its file name, so two
files describing one bench cannot both be leased. A rig named directly whose last check failed is refused
unless forced; a pool skips it.

A rig's health is a file on its host, what pools decide by; each record is also mirrored into the store
(hil.lab.lab_store) for the lab's dashboard, with the console of the `hil rig check` that made it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from hil.errors import LeaseError, RigConfigError
from hil.lab.locking import HELD_ENV, Lease, LeaseMirror
from hil.lab.rig import AutohatRig, Rig, TwinRig, available, load_rig
from hil.util import yamlconf
from hil.util.paths import cache_dir, project_dirs

log = logging.getLogger("hil.lab.pool")
HALF_WRITTEN = "card half-written by a failed flash of"

POOL_PREFIX = "pool:"
INSTANCE_SEP = "#"
_POLL = 0.5
_UNSAFE = re.compile(r"[^A-Za-z0-9._:+-]")  # lock names are file names


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


def record_health(rig: str, healthy: bool, reason: str = "", console: bytes | None = None) -> Health:
    """Record the outcome of `hil rig check` for a rig (an unhealthy rig is skipped by pools), then mirror
    it into the store with the check's `console`, if it had one."""
    record = Health(healthy, datetime.now(UTC), reason)
    folder = health_dir()
    folder.mkdir(parents=True, exist_ok=True)
    data = {"healthy": healthy, "checked": record.checked.isoformat(), "reason": reason}
    tmp = folder / f".{rig}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, folder / f"{rig}.json")  # a pool reading at the same moment sees old or new, never half
    # At call time, for start-up speed: the store's modules (SQLAlchemy, Alembic) take most of a second.
    from hil.lab.lab_store import mirror_check

    mirror_check(rig, healthy, reason, record.checked, console)
    return record


class HalfWrittenCard:
    """The rig's health as the guard of its card's writes (`hil.drivers.autohat.WriteGuard`): unhealthy
    from the first byte written until the card is verified, so pools skip it even if the writer dies."""

    def __init__(self, rig: str) -> None:
        self.rig = rig

    def writing(self, image: Path) -> None:
        """Mark the card half-written (a rig already unhealthy for another reason keeps that reason)."""
        last = health(self.rig)
        if last is None or last.healthy or last.reason.startswith(HALF_WRITTEN):
            record_health(self.rig, False, f"{HALF_WRITTEN} {image}; reflash it")

    def written(self, image: Path) -> None:
        """Clear the mark this guard set; any other reason for ill health stays."""
        last = health(self.rig)
        if last is not None and not last.healthy and last.reason.startswith(HALF_WRITTEN):
            record_health(self.rig, True, f"card flashed with {image}")


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
    """Every usable pool, from pools.yaml files and rig files' `pool:` fields (rigs listed first come first).

    A rig file that does not load is skipped with a warning, so one bad file cannot stop every pool; only
    the pool it belongs to is left out, and `load_pool` says why.
    """
    return _survey()[0]


def load_pool(name: str) -> Pool:
    """A pool by name, or RigConfigError naming its bad rig file or listing the known pools."""
    known, broken = _survey()
    if name in broken:
        raise RigConfigError(f"{broken[name]}; pool {name} cannot be used until it is fixed")
    if name not in known:
        raise RigConfigError(f"unknown pool {name!r}; known pools: {', '.join(sorted(known)) or 'none'}")
    return known[name]


def _survey() -> tuple[dict[str, Pool], dict[str, str]]:
    """The usable pools, and the error of the bad rig file that stops each of the others."""
    rigs, bad = _load_rigs()
    members: dict[str, list[Rig]] = {}
    descriptions: dict[str, str] = {}
    where: dict[str, str] = {}
    broken: dict[str, str] = {}
    for problem, pool in bad.values():
        if pool:
            broken.setdefault(pool, problem)
    for path in _pool_files():
        data, lines = yamlconf.read_yaml(path, RigConfigError)
        specs = yamlconf.validate(dict[str, _PoolSpec], data or {}, lines, path, RigConfigError)
        for name, spec in specs.items():
            if name in members:
                continue  # earlier rig directories win, as they do for rigs
            for i, rig_name in enumerate(spec.rigs):
                if rig_name not in rigs and rig_name not in bad:
                    raise RigConfigError(
                        f"{path}:{lines[(name, 'rigs', i)]}: {name}.rigs.{i}: unknown rig {rig_name!r}"
                    )
                if rig_name in bad:
                    broken.setdefault(name, bad[rig_name][0])
            members[name] = [rigs[r] for r in spec.rigs if r in rigs]
            descriptions[name], where[name] = spec.description, f"{path}:{lines[(name,)]}"
    for rig in rigs.values():
        name = getattr(rig.spec, "pool", None)
        if name and rig.name not in {r.name for r in members.get(name, [])}:
            members.setdefault(name, []).append(rig)
            where.setdefault(name, str(rig.path))
    found = {}
    for name, pool_rigs in members.items():
        if name in broken:
            continue
        types = {r.device_type for r in pool_rigs}
        if len(types) > 1:
            listed = ", ".join(f"{r.name} ({r.device_type})" for r in pool_rigs)
            raise RigConfigError(f"{where[name]}: pool {name} mixes device types: {listed}")
        if not pool_rigs:
            raise RigConfigError(f"{where[name]}: pool {name} has no rigs")
        found[name] = Pool(name, tuple(pool_rigs), descriptions.get(name, ""))
    return found, broken


def _load_rigs() -> tuple[dict[str, Rig], dict[str, tuple[str, str | None]]]:
    """Every rig that loads; for each rig file that does not, its error and the pool it names, if any."""
    loaded: dict[str, Rig] = {}
    bad: dict[str, tuple[str, str | None]] = {}
    for name, path in available().items():
        try:
            loaded[name] = load_rig(path)
        except RigConfigError as exc:
            log.warning("skipping rig %s: %s", name, exc)  # exc names the file and line at fault
            bad[name] = (str(exc), _named_pool(path))
    return loaded, bad


def _named_pool(path: Path) -> str | None:
    """The pool a rig file that does not validate says it serves, as far as its YAML can be read."""
    try:
        data, _ = yamlconf.read_yaml(path, RigConfigError)
    except RigConfigError:
        return None
    pool = data.get("pool") if isinstance(data, dict) else None
    return pool if isinstance(pool, str) else None


def lease_names(rig: Rig) -> list[str]:
    """The names a rig is leased under: its own, or one per instance of a virtual rig."""
    count = getattr(rig.spec, "instances", 1)
    return [rig.name] if count == 1 else [f"{rig.name}{INSTANCE_SEP}{i}" for i in range(count)]


def hardware_keys(rig: Rig) -> tuple[str, ...]:
    """The locks a physical or twin rig's board takes: its card reader and console line; () when virtual."""
    spec = rig.spec
    if not isinstance(spec, AutohatRig | TwinRig):
        return ()
    card = spec.card
    if card.by_path:
        keys = [f"card-path-{Path(card.by_path).name}"]
    else:  # hex ids in either case name one reader; lower-casing the serial too errs on the safe side
        keys = [f"card-usb-{card.vendor_id or ''}-{card.product_id or ''}-{card.serial or ''}".lower()]
    if isinstance(spec, AutohatRig):
        port = spec.console.port
        # Two spellings of one adapter (by-id link, ttyUSB node) are one line: lock the node it is now.
        node = os.path.realpath(port) if port.startswith("/dev/") and os.path.exists(port) else port
        keys.append(f"console-{node.removeprefix('/dev/')}")
    return tuple(_UNSAFE.sub("_", key) for key in keys)


def leases(rig: Rig) -> list[Lease]:
    """One (not yet acquired) lease per board the rig can run at once."""
    keys = hardware_keys(rig)
    return [Lease(name, keys=keys, mirror=LeaseMirror()) for name in lease_names(rig)]


def rig_for(arg: str) -> Rig:
    """The rig definition a --rig argument names (a pool's first rig), without leasing anything."""
    return _candidates(arg)[0][0]


def lease_count(arg: str) -> int:
    """Boards --rig ARG can lease at once: NAME its instances, NAME#I one, pool:NAME all its rigs'."""
    return len(_candidates(arg))


def require_healthy(rig: Rig) -> None:
    """Refuse (LeaseError naming the failed check and when) a rig whose last `hil rig check` failed."""
    last = health(rig.name)
    if last is not None and not last.healthy:
        raise LeaseError(
            f"rig {rig.name} failed its last check ({last.reason or 'no reason given'}, checked "
            f"{last.checked.isoformat(timespec='seconds')}); `hil rig check {rig.name}` re-checks it, "
            "--force (pytest: --force-rig) uses it anyway"
        )


def lease_rig(arg: str, wait: float = 0.0, force: bool = False) -> tuple[Rig, Lease]:
    """Lease what --rig names: NAME or PATH, NAME#INSTANCE, or pool:NAME; wait up to `wait` seconds.

    A pool skips rigs whose last check failed; a rig named directly is refused then, unless `force`.
    """
    candidates = _candidates(arg)
    from_pool = arg.startswith(POOL_PREFIX)
    if not from_pool and not force:
        require_healthy(candidates[0][0])
    deadline = time.monotonic() + wait
    waiting = False
    while True:
        sick = {r.name: h for r, _ in candidates if from_pool and (h := health(r.name)) and not h.healthy}
        usable = [(rig, lease) for rig, lease in candidates if rig.name not in sick]
        if not usable:
            raise LeaseError(f"{arg}: no healthy rig; {_unhealthy(sick)}; `hil rig check NAME` re-checks one")
        for rig, lease in usable:
            try:
                return rig, lease.acquire()
            except LeaseError:
                if os.environ.get(HELD_ENV) == lease.rig_name:
                    raise  # the lease this process was handed: say why it cannot be used
                continue
        if time.monotonic() >= deadline:
            raise LeaseError(_busy(arg, usable, sick, wait))
        if not waiting:
            log.warning("%s: every rig is leased; waiting up to %.0f s for one", arg, wait)
            waiting = True
        time.sleep(_POLL)


def _candidates(arg: str) -> list[tuple[Rig, Lease]]:
    """(rig, lease) pairs an argument may be leased as, in the order they are tried (a held lease first)."""
    base, sep, instance = arg.rpartition(INSTANCE_SEP)
    if arg.startswith(POOL_PREFIX):
        found = [
            (rig, lease) for rig in load_pool(arg.removeprefix(POOL_PREFIX)).rigs for lease in leases(rig)
        ]
    elif sep and instance.isdigit() and os.sep not in arg:
        rig = load_rig(base)
        wanted = f"{rig.name}{INSTANCE_SEP}{instance}"
        found = [(rig, lease) for lease in leases(rig) if lease.rig_name == wanted]
        if not found:
            raise RigConfigError(
                f"rig {rig.name} has no instance {instance}; it has {', '.join(lease_names(rig))}"
            )
    else:
        rig = load_rig(arg)
        found = [(rig, lease) for lease in leases(rig)]
    held = os.environ.get(HELD_ENV)  # set inside `hil rig hold`: that lease is this process's to use
    return sorted(found, key=lambda pair: pair[1].rig_name != held)


def _pool_files() -> list[Path]:
    return [d / "pools.yaml" for d in project_dirs("rigs", "HIL_RIGS_DIR") if (d / "pools.yaml").is_file()]


def _unhealthy(sick: dict[str, Health]) -> str:
    return "unhealthy: " + ", ".join(
        f"{name} ({h.reason or 'no reason given'}, checked {h.checked.isoformat(timespec='seconds')})"
        for name, h in sick.items()
    )


def _busy(arg: str, usable: list[tuple[Rig, Lease]], sick: dict[str, Health], wait: float) -> str:
    held = "; ".join(f"{lease.rig_name} is {lease.leased_by()}" for _, lease in usable)
    skipped = f"; {_unhealthy(sick)}" if sick else ""
    return f"{arg}: no free rig after waiting {wait:.0f} s: {held}{skipped}"
