"""Rig leases: one holder per board, held by OS file locks so the lease dies with its holder.

A lease takes one lock per piece of hardware its board is (a physical rig's card reader and console
line), all or none, so two rig files describing one bench are never leased at once; a virtual board's
lease is a lock of its own name. A process started by `hil rig hold` finds the held lease's name in
HIL_HELD_LEASE and adopts it instead of leasing again: one such process at a time, and only while the
hold, its ancestor, lives.

While a lease is held, its holder can mirror it into hil's store (`LeaseMirror`: host, pid, holder, since,
and a heartbeat every HEARTBEAT seconds), so a dashboard anywhere shows who holds what; a row whose
heartbeat is older than STALE_AFTER is stale (its holder may be gone), never held. The flock stays the
lease: a store that cannot be used is one warning, and leasing goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from hil.errors import LeaseError
from hil.util.paths import cache_dir

if TYPE_CHECKING:
    from hil.lab.lab_store import LabStore

log = logging.getLogger("hil.lease")

HELD_ENV = "HIL_HELD_LEASE"
# A mirrored lease's holder says it still holds every HEARTBEAT seconds; a row not refreshed for STALE_AFTER
# seconds (three missed beats) is shown as stale.
HEARTBEAT = 30.0
STALE_AFTER = 90.0
_STOP_WAIT = 5.0  # how long a release waits for the mirror to remove its row before letting go anyway
_POLL = 0.1
_WITHIN_HOLD = "+hold"  # suffix of the locks that take turns among the processes inside one hold


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: host, process id, since when (UTC), and the lease it is part of."""

    host: str
    pid: int
    since: datetime
    lease: str = ""

    def __str__(self) -> str:
        return f"{self.host}:{self.pid} since {self.since.isoformat(timespec='seconds')}"


def lease_dir() -> Path:
    """Where lease lock files live: <cache>/leases."""
    return cache_dir() / "leases"


class Lease:
    """The right to use one board: an `flock` on `<lock_dir>/<key>.lock` for each of its `keys`."""

    def __init__(
        self, rig_name: str, lock_dir: Path | None = None, keys: Sequence[str] = (),
        mirror: LeaseMirror | None = None,
    ) -> None:  # fmt: skip
        self.rig_name = rig_name
        self.keys = tuple(sorted(set(keys))) or (rig_name,)  # sorted: two leasers never cross-wait
        self.lock_dir = Path(lock_dir) if lock_dir else lease_dir()
        self.mirror = mirror  # shows the lease in the store while it is held (not an adopted one: the hold's)
        self._fds: list[int] = []
        self._hold_pid: int | None = None
        self._since = _now()

    @property
    def held(self) -> bool:
        """Whether this object holds the lease (itself, or adopted from a `hil rig hold`)."""
        return bool(self._fds)

    def holder(self) -> Holder | None:
        """Who holds any of this lease's locks now, or None when the board is free."""
        return next((found for key in self.keys if (found := holder(key, self.lock_dir))), None)

    def leased_by(self) -> str:
        """Who holds the board, for a message: "leased by HOST:PID since T (as OTHER: the same KEY)"."""
        return next((self._leased_by(key) for key in self.keys if holder(key, self.lock_dir)),
                    "leased by nobody (just freed)")  # fmt: skip

    def acquire(self, wait: float | None = None) -> Lease:
        """Take the lease; if another holder has it, LeaseError at once, or after waiting `wait` seconds."""
        if self._fds:
            return self
        if os.environ.get(HELD_ENV) == self.rig_name:
            return self._adopt(wait)
        self._fds = self._lock_all(self.keys, wait)
        if self.mirror is not None:
            self.mirror.start(self.rig_name, self._since)
        log.info("leased rig %s", self.rig_name)
        return self

    def release(self) -> None:
        """Give the lease back (idempotent)."""
        if not self._fds:
            return
        self._hold_pid = None
        if self.mirror is not None:
            self.mirror.stop()  # the row goes while the lease is still ours: a next holder's row stays
        for fd in self._fds:
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor drops the flock
        self._fds = []
        log.info("released rig %s", self.rig_name)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _lock_all(self, keys: Sequence[str], wait: float | None) -> list[int]:
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + (wait or 0)
        while isinstance(taken := self._try_lock_all(keys), str):
            if time.monotonic() >= deadline:
                raise LeaseError(f"rig {self.rig_name} is {self._leased_by(taken)}")
            time.sleep(_POLL)
        self._since = _now()
        record = {"host": socket.gethostname(), "pid": os.getpid(), "since": self._since.isoformat(),
                  "lease": self.rig_name}  # fmt: skip
        for fd in taken:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        return taken

    def _try_lock_all(self, keys: Sequence[str]) -> list[int] | str:
        """The locked descriptors, or the first key someone else holds (nothing stays locked then)."""
        fds: list[int] = []
        for key in keys:
            # O_CLOEXEC: a child (QEMU, the shell of a hold) must not keep the lock after its parent died.
            fd = os.open(self.lock_dir / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fds.append(fd)
            if not _try_lock(fd, fcntl.LOCK_EX):
                for taken in fds:
                    os.close(taken)
                return key
        return fds

    def _leased_by(self, key: str) -> str:
        who = holder(key, self.lock_dir)
        message = f"leased by {who or 'nobody (just freed)'}"
        if key.endswith(_WITHIN_HOLD):
            return f"{message}, another command inside the same `hil rig hold`"
        if who is not None and who.lease and who.lease != self.rig_name:
            return f"{message} (as {who.lease}: the same {key})"
        return message

    def _adopt(self, wait: float | None) -> Lease:
        """Use the lease a `hil rig hold` above this process holds; stop this process if the hold ends."""
        owners = {holder(key, self.lock_dir) for key in self.keys}
        hold = owners.pop() if len(owners) == 1 else None
        if hold is None or hold.host != socket.gethostname() or not _is_ancestor(hold.pid):
            raise LeaseError(
                f"{HELD_ENV}={self.rig_name}, but no parent of this process holds that lease "
                f"(did its `hil rig hold` end?); unset {HELD_ENV} to lease the rig anew"
            )
        try:
            pidfd = os.pidfd_open(hold.pid)
        except ProcessLookupError:
            raise LeaseError(f"the `hil rig hold` of {self.rig_name} (pid {hold.pid}) just ended") from None
        self._fds = self._lock_all([f"{key}{_WITHIN_HOLD}" for key in self.keys], wait)
        self._hold_pid = hold.pid
        threading.Thread(target=self._stop_with_hold, args=(pidfd, hold.pid), daemon=True).start()
        log.info("using rig %s, held by %s (pid %d)", self.rig_name, hold.host, hold.pid)
        return self

    def _stop_with_hold(self, pidfd: int, pid: int) -> None:
        select.select([pidfd], [], [])  # a pidfd turns readable when its process ends
        os.close(pidfd)
        if self._hold_pid == pid:
            # The rig is free for anyone now: unwind as on Ctrl-C, so the hardware is let go in order.
            log.error("the `hil rig hold` of %s (pid %d) ended: stopping", self.rig_name, pid)
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


class LeaseMirror:
    """Mirrors one held lease into the store's `leases` table (hil.lab.lab_store) from a daemon thread:
    its row as the lease is taken, refreshed every `heartbeat` seconds, removed as it is released.

    `store` is a store as `--store` takes it (default: $HIL_STORE, ...). Nothing here can fail the lease:
    a store that cannot be used is one warning per process, and the thread tries again at the next beat.
    """

    def __init__(
        self, store: str | Path | None = None, heartbeat: float = HEARTBEAT, holder: str | None = None
    ) -> None:
        self.store = store
        self.heartbeat = heartbeat
        self.holder = holder or describe_holder()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, rig: str, since: datetime) -> None:
        """Begin mirroring the lease `rig` (a rig or instance name), held since `since`."""
        self.stop()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(rig, since, self._stop), name=f"lease-mirror {rig}", daemon=True
        )
        self._thread.start()

    def stop(self, wait: float = _STOP_WAIT) -> None:
        """Stop beating and remove the row; give up waiting after `wait` seconds (a store that hangs)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(wait)
        self._thread = None

    def _run(self, rig: str, since: datetime, stop: threading.Event) -> None:
        # At call time, for start-up speed (and off the leaser's path): the store's modules (SQLAlchemy,
        # Alembic) take most of a second to import.
        from hil.lab.lab_store import LeaseRow, beat

        row = LeaseRow(rig, socket.gethostname(), os.getpid(), self.holder, since, since)
        store = None
        while True:
            store = self._write(store, rig, lambda s: s.hold(beat(row)))
            if stop.wait(self.heartbeat):
                break
        self._write(store, rig, lambda s: s.drop(row))

    def _write(self, store: LabStore | None, rig: str, action: Callable[[LabStore], None]) -> LabStore | None:
        """Do `action` on the store (opening it first when needed); the store, or None when it failed."""
        # At call time, for start-up speed, as in _run.
        from hil.lab.lab_store import STORE_ERRORS, LabStore, warn_once

        try:
            store = store or LabStore(self.store)
            action(store)
            return store
        except STORE_ERRORS as exc:
            warn_once(self.store, f"lease of {rig} held, but not shown in the store: the store cannot be "
                      f"used ({exc})")  # fmt: skip
            return None


def describe_holder() -> str:
    """Who holds a lease, for people: the CI build ($BUILD_TAG) or the user, and the command."""
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    try:
        user = os.environ.get("USER") or os.getlogin()
    except OSError:
        user = f"uid {os.getuid()}"
    return f"{os.environ.get('BUILD_TAG') or user}: {command}"[:200]


def holder(key: str, lock_dir: Path | None = None) -> Holder | None:
    """Who holds the lock `key` (a rig or instance name, or a piece of hardware) now, or None."""
    path = (Path(lock_dir) if lock_dir else lease_dir()) / f"{key}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _parse(os.pread(fd, 4096, 0))
    finally:
        os.close(fd)


def _parse(data: bytes) -> Holder:
    try:
        record = json.loads(data)
        return Holder(record["host"], int(record["pid"]), datetime.fromisoformat(record["since"]),
                      str(record.get("lease", "")))  # fmt: skip
    except (ValueError, KeyError, TypeError, AttributeError):
        # The holder has locked but not yet written its name.
        return Holder("unknown", 0, _now())


def _is_ancestor(pid: int) -> bool:
    current = os.getppid()
    while current > 1:
        if current == pid:
            return True
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
        except OSError:
            return False
        current = int(stat.rsplit(")", 1)[1].split()[1])  # the name in (...) may hold spaces
    return False


def _try_lock(fd: int, kind: int) -> bool:
    with contextlib.suppress(BlockingIOError):
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    return False


def _now() -> datetime:
    return datetime.now(UTC)
