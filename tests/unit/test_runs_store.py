"""The run store, on sqlite and on PostgreSQL (the `store_url` fixture): whole runs under concurrent
recording, and the recorded JUnit file as faithful evidence for the gate; a sqlite file's schema version
with a migration path (tests/unit/test_store_migrations.py has the rest)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from hil.errors import HilError
from hil.release.sqlite_store import SqliteStore
from hil.results.read import read_results
from hil.runs.phases import boot_phases, kernel_seconds
from hil.runs.record import SessionInfo, run_from_junit
from hil.runs.store import AlreadyRecorded, RunStore
from hil.store.db import SCHEMA_VERSION
from hil.store.schema import runs, test_stats, tests
from tests.support.release_samples import IMAGE_SHA256, case_id, write_junit

_BEFORE_VERSIONS = """
CREATE TABLE releases (id INTEGER PRIMARY KEY, version TEXT NOT NULL, device_types TEXT NOT NULL,
    status TEXT NOT NULL, created TEXT NOT NULL, finalized_at TEXT);
CREATE TABLE decisions (id INTEGER PRIMARY KEY, release_id INTEGER NOT NULL, decided_at TEXT NOT NULL,
    who TEXT NOT NULL, verdict TEXT NOT NULL, outcome TEXT NOT NULL, policy_sha256 TEXT NOT NULL,
    evidence TEXT NOT NULL);
INSERT INTO releases VALUES (1, '1.1.0', '["qemux86-64"]', 'final', '2026-01-01T00:00:00+00:00', NULL);
"""


def record(store: RunStore, folder: Path, run_id: str, build_tag: str = "", **junit: object) -> int:
    path = write_junit(folder / run_id / "junit.xml", run_id=run_id, **junit)  # type: ignore[arg-type]
    info = SessionInfo(
        run_id, "2026-11-22T06:00:00+00:00", "qemux86-64-1", "qemux86-64", path.parent, build_tag=build_tag
    )
    return store.record(*run_from_junit(path, info))


def test_a_store_from_before_schema_versions_opens_keeps_its_releases_and_gains_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_BEFORE_VERSIONS)
    store = RunStore(path)
    assert store.count() == 0
    assert SqliteStore(path).get("1").version == "1.1.0"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_store_written_by_a_newer_hil_is_refused_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    RunStore(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(HilError, match=rf"has schema version 7; this hil knows up to {SCHEMA_VERSION}"):
        RunStore(path)


def test_a_run_keeps_each_tests_outcome_duration_reason_and_boot_time(tmp_path: Path, store_url: str) -> None:
    store = RunStore(store_url)
    failing = case_id("boot", "test_ssh_answers")
    record(store, tmp_path, "r1", outcomes={failing: "failed"})
    run = store.get("r1")
    assert (run.device_type, run.image_sha256, run.os_version, run.exitstatus) == (
        "qemux86-64", IMAGE_SHA256, "1.2.0", 1
    )  # fmt: skip
    test = next(t for t in run.tests if t.test == "test_boot::test_ssh_answers")
    assert (test.outcome, test.seconds, test.message) == ("failed", 1.5, "AssertionError: assert 1 == 0")
    assert (run.passed, run.failed, run.skipped) == (13, 1, 0)
    with pytest.raises(AlreadyRecorded, match="run r1 is already recorded"):
        record(store, tmp_path / "again", "r1")


def test_a_run_carries_its_ci_build_tag_and_runs_are_found_by_it(tmp_path: Path, store_url: str) -> None:
    store = RunStore(store_url)
    for run_id, tag in (
        ("r1", "jenkins-hil-41"),
        ("r2", "jenkins-hil-42"),
        ("r3", ""),
        ("r4", "jenkins-hil-42"),
    ):
        record(store, tmp_path, run_id, build_tag=tag)
    assert store.get("r2").build_tag == "jenkins-hil-42" and store.get("r3").build_tag == ""
    assert [r.run_id for r in store.runs(build_tag="jenkins-hil-42")] == ["r4", "r2"]
    assert {r.run_id: r.build_tag for r in store.runs()}["r1"] == "jenkins-hil-41"
    assert (store.count(build_tag="jenkins-hil-42"), store.count(build_tag="nope"), store.count()) == (
        2,
        0,
        4,
    )
    assert store.tagged("jenkins-hil-42") == ["r2", "r4"] and store.tagged("nope") == []


def test_a_recorded_run_pushed_again_with_another_junit_file_is_told_apart(
    tmp_path: Path, store_url: str
) -> None:
    store = RunStore(store_url)
    record(store, tmp_path, "r1")
    with pytest.raises(AlreadyRecorded) as same:
        record(store, tmp_path, "r1")  # the same file again
    with pytest.raises(AlreadyRecorded) as other:
        record(store, tmp_path / "other", "r1", outcomes={case_id("boot", "test_ssh_answers"): "failed"})
    assert (same.value.same, other.value.same) == (True, False)
    assert store.count() == 1


def _record_many(path: str, folder: Path, prefix: str, count: int) -> None:
    store = RunStore(path)
    for i in range(count):
        record(store, folder, f"{prefix}{i}")


def test_two_processes_recording_at_once_lose_nothing(tmp_path: Path, store_url: str) -> None:
    path = store_url
    RunStore(path)
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_record_many, args=(path, tmp_path, p, 25)) for p in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    store = RunStore(path)
    assert store.count() == 50
    with store.db.transaction(read_only=True) as db:
        assert db.execute(select(func.count()).select_from(tests)).scalar() == 50 * 14
        assert set(db.execute(select(test_stats.c.passed)).scalars()) == {50}


def test_a_recorded_run_is_the_same_evidence_as_its_junit_file(tmp_path: Path, store_url: str) -> None:
    store = RunStore(store_url)
    record(store, tmp_path, "r1", outcomes={case_id("boot", "test_ssh_answers"): "skipped"})
    from_file = read_results([tmp_path / "r1"])
    from_store = read_results([], [store.junit("r1")])
    assert [a.outcome for a in from_store.attempts] == [a.outcome for a in from_file.attempts]
    assert from_store.sessions[0].image_sha256 == from_file.sessions[0].image_sha256
    assert not from_store.problems


def test_a_recorded_junit_that_no_longer_matches_its_hash_is_not_evidence(
    tmp_path: Path, store_url: str
) -> None:
    store = RunStore(store_url)
    record(store, tmp_path, "r1")
    with store.db.transaction() as db:
        db.execute(update(runs).values(junit_sha256="0" * 64))
    found = read_results([], [store.junit("r1")])
    assert not found.sessions
    assert any("hash to" in p and f"not the {'0' * 64} recorded" in p for p in found.problems)


def test_kernel_phase_is_read_from_printk_stamps_and_measured_phases_win(tmp_path: Path) -> None:
    transcript = tmp_path / "console.log"
    transcript.write_bytes(
        b"\x1b[2JBdsDxe: loading Boot0001\r\nWelcome to GRUB!\r\n[    0.000000] Linux version 6.1.0\r\n"
        b"[    2.918776] Freeing unused decrypted memory: 2036K\r\n"
        b"[    3.283414] Run /init as init process\r\n"
        b"login: "
    )
    assert kernel_seconds(transcript) == pytest.approx(3.283414)
    assert kernel_seconds(tmp_path / "none.log") is None
    assert boot_phases([transcript], []) == {"kernel": pytest.approx(3.283414)}
    measured = [("hil.boot_phase.firmware", 5.1), ("hil.boot_phase.kernel", 3.0), ("hil.boot_seconds", 9.0),
                ("hil.boot_phase.firmware", 4.0)]  # fmt: skip
    # The first boot's phases: a later test's boot does not overwrite them.
    assert boot_phases([transcript], measured) == {"firmware": 5.1, "kernel": 3.0}


def test_device_types_lists_each_recorded_type_once_in_order(tmp_path: Path, store_url: str) -> None:
    store = RunStore(store_url)
    assert store.device_types() == []
    for n, device_type in enumerate(["raspberrypi4-64", "qemux86-64", "raspberrypi4-64", "genericx86-64"]):
        record(store, tmp_path, f"run-{n}", device_type=device_type)
    assert store.device_types() == ["genericx86-64", "qemux86-64", "raspberrypi4-64"]
