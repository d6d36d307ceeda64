"""The lab in the store, on sqlite and on PostgreSQL (the `store_url` fixture): every agent's rig checks
with their consoles, the lease mirror's rows and heartbeats, a stale row never shown as held, and a store
that cannot be reached failing neither a check nor a lease (one warning)."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hil.lab.lab_store import LabStore, LeaseRow
from hil.lab.locking import STALE_AFTER, Lease, LeaseMirror
from hil.lab.pool import health, record_health

WAIT = 30.0  # seconds a test waits for the mirror's thread, at most


def eventually(found: Callable[[], object], what: str) -> object:
    """What `found` returns once it is truthy; fails naming `what` after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not (value := found()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {WAIT} s")
        time.sleep(0.02)
    return value


def unreachable() -> str:
    """A PostgreSQL store URL whose server is not there (a socket folder that does not exist): each one
    new, so a test sees its own first warning."""
    return f"postgresql://hil@/lab?host=/nonexistent/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache (health files) for one test."""
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_each_rigs_newest_check_from_any_agent_with_its_console(store_url: str) -> None:
    store = LabStore(store_url)
    t0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
    store.record_check("bench-7", True, "", t0, b"U-Boot 2024.01\r\nlogin: ", host="agent-1")
    newest = store.record_check(
        "bench-7", False, "serial: silent", t0 + timedelta(minutes=5), None, "agent-2"
    )
    store.record_check("vm", True, "", t0, b"[    0.000000] Linux version 6.1\n" * 40000, host="agent-1")
    latest = store.latest_checks()
    assert sorted(latest) == ["bench-7", "vm"]
    bench = latest["bench-7"]
    assert (bench.id, bench.host, bench.healthy, bench.reason, bench.has_console) == (
        newest, "agent-2", False, "serial: silent", False
    )  # fmt: skip
    assert bench.checked_at == t0 + timedelta(minutes=5)
    assert [c.host for c in store.checks("bench-7")] == ["agent-2", "agent-1"]
    check, console = store.console(latest["vm"].id) or (None, b"")
    assert check is not None and check.has_console and console.endswith(b"Linux version 6.1\n")
    assert len(console) == 1 << 20  # the end of a long console is kept, where a failure shows
    assert store.console(newest) == (bench, b"") and store.console(10_000) is None


def test_record_health_writes_the_local_file_and_mirrors_the_checks_console(
    cache: Path, tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIL_STORE", store_url)
    recorded = record_health("bench-7", False, "boot: no shell", console=b"bench-7 login: ")
    assert health("bench-7") == recorded  # the file on this host: what pools decide by
    check = LabStore(store_url).latest_checks()["bench-7"]
    assert (check.host, check.healthy, check.reason) == (socket.gethostname(), False, "boot: no shell")
    assert LabStore(store_url).console(check.id) == (check, b"bench-7 login: ")
    record_health("bench-7", True)  # not a check (a card flashed): no console
    assert not LabStore(store_url).latest_checks()["bench-7"].has_console


def test_a_store_that_cannot_be_reached_fails_no_check_and_warns_once(
    cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HIL_STORE", unreachable())
    caplog.set_level(logging.WARNING)
    record_health("bench-7", False, "card half-written by a failed flash of x.img; reflash it")
    record_health("bench-7", False, "card half-written by a failed flash of y.img; reflash it")
    last = health("bench-7")
    assert last is not None and not last.healthy and "y.img" in last.reason  # the safety mark survives
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "rig check of bench-7 kept on this host only" in warnings[0]


def test_a_held_lease_is_mirrored_with_heartbeats_and_its_row_goes_with_it(
    tmp_path: Path, store_url: str
) -> None:
    store = LabStore(store_url)
    mirror = LeaseMirror(store_url, heartbeat=0.05, holder="jenkins-hil-7: hil run")
    with Lease("vm#1", tmp_path, mirror=mirror):
        first = eventually(lambda: store.leases(), "mirrored lease")
        [row] = first  # type: ignore[misc]
        assert (row.rig, row.host, row.pid, row.holder) == (
            "vm#1", socket.gethostname(), os.getpid(), "jenkins-hil-7: hil run"
        )  # fmt: skip
        eventually(lambda: store.leases()[0].heartbeat > row.heartbeat, "newer heartbeat")
        assert store.leases()[0].since == row.since  # a beat refreshes the heartbeat only
    eventually(lambda: not store.leases(), "row removed on release")


def test_a_release_removes_only_its_own_row(tmp_path: Path, store_url: str) -> None:
    store = LabStore(store_url)
    now = datetime.now(UTC)
    gone = LeaseRow(
        "bench-7", "agent-1", 100, "a killed holder", now - timedelta(hours=1), now - timedelta(hours=1)
    )
    newer = LeaseRow("bench-7", "agent-2", 200, "the next holder", now, now)
    store.hold(gone)
    store.hold(newer)  # the next holder replaces the gone one's row
    store.drop(gone)
    assert store.leases() == [newer]


def test_a_row_is_stale_once_its_heartbeat_is_older_than_stale_after() -> None:
    beat = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
    row = LeaseRow("bench-7", "agent-1", 100, "x", beat, beat)
    assert not row.stale(beat + timedelta(seconds=STALE_AFTER))
    assert row.stale(beat + timedelta(seconds=STALE_AFTER + 1))
    assert row.stale(beat + timedelta(seconds=2), after=1.0) and not row.stale(beat, after=1.0)


def test_a_store_outage_leaves_leasing_alone_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    store = unreachable()

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    for name in ("bench-7", "bench-8"):
        with Lease(name, tmp_path, mirror=LeaseMirror(store, heartbeat=0.02)) as lease:
            assert lease.held
            eventually(warnings, "warning")
            time.sleep(0.1)  # several beats fail meanwhile
    assert len(warnings()) == 1 and "lease of bench-7 held, but not shown in the store" in warnings()[0]
    with Lease("bench-7", tmp_path) as lease:  # and the lease was let go
        assert lease.held
