"""Nothing recorded is lost when the store is not there: a run whose store is unreachable at its end is
kept in its artifacts and pushed later, once; a PostgreSQL restart in the middle of a run costs a retry,
not the run; a gate whose connection drops mid-decision leaves the release as it was and says so. Against
real sqlite files and the throwaway PostgreSQL (tests/support/postgres.py); a store is made unreachable by
naming a server that is not there, by moving a sqlite file's folder away, or by stopping the server."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from hil.commands.main import main
from hil.images.hash import image_sha256
from hil.release import catalog
from hil.release.sqlite_store import SqliteStore
from hil.runs.kept import KEPT, record_or_keep
from hil.runs.record import SessionInfo, run_from_junit
from hil.runs.store import RunStore
from hil.store.schema import running
from hil.store.url import store_url as parse_store
from tests.support.postgres import PostgresServer
from tests.support.release_samples import catalog_of, write_image, write_junit

SECRET = "s3cret-pw"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A database of its own on the throwaway server."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


def unreachable(tmp_path: Path) -> str:
    """A PostgreSQL URL, with a password, naming a server that is not there."""
    return f"postgresql://lab:{SECRET}@/hil?host={tmp_path}/no-server&connect_timeout=2"


def a_run(folder: Path, run_id: str, build_tag: str = "") -> tuple[Any, bytes, Path]:
    """A run as the plugin makes it: the Run, its JUnit bytes and the JUnit file, in `folder`."""
    junit = write_junit(folder / "junit.xml", run_id=run_id)
    info = SessionInfo(
        run_id, "2026-11-22T06:00:00+00:00", "qemux86-64-1", "qemux86-64", folder, build_tag=build_tag
    )
    run, data = run_from_junit(junit, info)
    return run, data, junit


# A run whose store is unreachable at its end is kept, and `hil runs push` records it once.


def test_an_unreachable_store_keeps_the_run_and_push_records_it_once(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    artifacts = tmp_path / "run-1"
    run, data, junit = a_run(artifacts, "r1", build_tag="jenkins-hil-7")
    line = record_or_keep(parse_store(unreachable(tmp_path)), None, run, data, junit, retry_for=0)
    assert line.startswith("hil: store postgresql://lab:***@/hil?connect_timeout=2&host=")
    assert "unreachable (connection" in line and SECRET not in line and "\n" not in line
    assert line.endswith(f"; run r1 kept in {artifacts}: send it with 'hil runs push {artifacts}'")
    assert (artifacts / KEPT).is_file()
    copy = tmp_path / "copy"
    shutil.copytree(artifacts, copy)

    assert main(["runs", "push", str(artifacts), "--store", store_url]) == 0
    assert f"run r1 recorded in {SqliteStore(store_url).where} as #1" in capsys.readouterr().out
    assert not (artifacts / KEPT).exists()
    pushed = RunStore(store_url).get("r1")
    assert (pushed.build_tag, pushed.passed, pushed.junit_sha256) == ("jenkins-hil-7", 14, run.junit_sha256)

    assert main(["runs", "push", str(copy), "--store", store_url]) == 0  # pushed twice: not doubled
    assert "run r1 is already recorded in" in capsys.readouterr().out
    assert RunStore(store_url).count() == 1 and not (copy / KEPT).exists()
    assert main(["runs", "push", str(artifacts), "--store", store_url]) == 1
    err = capsys.readouterr().err.strip()
    assert f"no run is kept in {artifacts}" in err and len(err.splitlines()) == 1


def test_a_kept_run_whose_junit_file_changed_is_not_pushed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, data, junit = a_run(tmp_path / "run-1", "r1")
    record_or_keep(parse_store(unreachable(tmp_path)), None, run, data, junit, retry_for=0)
    junit.write_text(junit.read_text().replace('time="1.500"', 'time="9.000"'))
    assert main(["runs", "push", str(tmp_path / "run-1"), "--store", str(tmp_path / "s.sqlite")]) == 1
    assert "is no longer the JUnit file the run wrote" in capsys.readouterr().err
    assert (tmp_path / "run-1" / KEPT).is_file() and RunStore(tmp_path / "s.sqlite").count() == 0


def test_a_store_lost_after_the_start_is_tried_again_then_the_run_is_kept(tmp_path: Path) -> None:
    folder = tmp_path / "lab"
    folder.mkdir()
    url = parse_store(str(folder / "s.sqlite"))
    store = RunStore(url)
    run, data, junit = a_run(tmp_path / "run-1", "r1")
    folder.rename(tmp_path / "lab-away")  # the share the file lives on went away
    line = record_or_keep(url, store, run, data, junit, retry_for=1.0)
    assert f"hil: store {folder / 's.sqlite'} unreachable (unable to open database file); run r1 kept" in line
    (tmp_path / "lab-away").rename(folder)
    assert main(["runs", "push", str(tmp_path / "run-1"), "--store", str(folder / "s.sqlite")]) == 0
    assert store.get("r1").junit_sha256 == run.junit_sha256


# The pytest plugin: a store down at the start or lost by the end changes neither the run nor its exit
# status; the run is kept and says how to send it; the password is never printed.

SUITE = """
import os
import shutil


def test_one():
    pass


def test_two():
    away = os.environ.get("MOVE_AWAY")
    if away:
        shutil.move(away, away + "-away")  # the store's folder goes while the run runs
    assert os.environ.get("FAIL") != "1"
"""


def session(tmp_path: Path, store: str, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    """One recorded pytest session of SUITE in `tmp_path`, artifacts in tmp_path/artifacts."""
    (tmp_path / "test_suite.py").write_text(SUITE)
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-c", "/dev/null",
        "-o", "junit_family=xunit1", "--hil-artifacts", str(tmp_path / "artifacts"), "--hil-store", store,
        *extra, str(tmp_path / "test_suite.py"),
    ]  # fmt: skip
    environment = {"PYTHONPATH": str(ROOT), "HIL_CACHE_DIR": str(tmp_path / "cache"), "BUILD_TAG": ""}
    return subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=180,
        env={**os.environ, **environment, **env},
    )  # fmt: skip


@pytest.mark.parametrize("fail", ["0", "1"])
def test_a_session_whose_store_is_down_at_the_start_goes_ahead_and_keeps_its_run(
    tmp_path: Path, store_url: str, fail: str, capsys: pytest.CaptureFixture[str]
) -> None:
    done = session(tmp_path, unreachable(tmp_path), "--hil-build-tag", "jenkins-hil-9", FAIL=fail)
    assert done.returncode == int(fail), done.stdout + done.stderr
    said = [line for line in done.stdout.splitlines() if "unreachable" in line]
    assert len(said) == 2, done.stdout
    assert (
        said[0].startswith("hil: store postgresql://lab:***@/hil?connect_timeout=2&host=")
        and "the run goes ahead" in said[0]
    )
    artifacts = tmp_path / "artifacts"
    assert f"kept in {artifacts}: send it with 'hil runs push {artifacts}'" in said[1]
    assert SECRET not in done.stdout + done.stderr
    assert main(["runs", "push", str(artifacts), "--store", store_url]) == 0
    capsys.readouterr()
    (run,) = RunStore(store_url).runs(build_tag="jenkins-hil-9")
    assert run.run_id in said[1] and run.build_tag == "jenkins-hil-9"


def test_a_session_whose_store_goes_away_keeps_its_run_with_the_ci_build_tag(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    done = session(tmp_path, f"sqlite:///{lab}/s.sqlite", "-o", "hil_store_retry_seconds=1",
                   MOVE_AWAY=str(lab), BUILD_TAG="jenkins-hil-10")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"hil: store {lab}/s.sqlite unreachable (unable to open database file); run " in done.stdout
    (tmp_path / "lab-away").rename(lab)
    assert main(["runs", "push", str(tmp_path / "artifacts"), "--store", str(lab / "s.sqlite")]) == 0
    assert RunStore(lab / "s.sqlite").runs()[0].build_tag == "jenkins-hil-10"


# A PostgreSQL restart in the middle of a run costs a reconnect or a retry, not the run.


def test_a_postgresql_restart_during_a_run_does_not_lose_it(
    tmp_path: Path, postgres: PostgresServer, pg_url: str
) -> None:
    store = RunStore(pg_url)
    store.record(*a_run(tmp_path / "run-0", "r0")[:2])  # the pool now holds a connection the restart kills
    store.start("r1", "2026-11-22T06:00:00+00:00", "qemux86-64-1", tmp_path / "run-1")
    postgres.restart()
    run, data, junit = a_run(tmp_path / "run-1", "r1")
    # No retry: the pool pings the connection the restart killed, and replaces it.
    line = record_or_keep(store.db.url, store, run, data, junit, retry_for=0)
    assert line.startswith("hil: run r1 recorded"), line
    assert store.get("r1").junit_sha256 == run.junit_sha256
    with store.db.transaction(read_only=True) as db:
        assert db.execute(select(running.c.run_id)).scalars().all() == []


def test_recording_waits_out_a_server_that_is_down_and_lands_when_it_is_back(
    tmp_path: Path, postgres: PostgresServer, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hil.store.db")
    store = RunStore(pg_url)
    run, data, _ = a_run(tmp_path / "run-1", "r1")
    rows: list[int] = []
    postgres.stop()
    try:
        recording = threading.Thread(target=lambda: rows.append(store.record(run, data, retry_for=60)))
        recording.start()
        wait_for(lambda: any("trying again" in r.getMessage() for r in caplog.records), timeout=30)
    finally:
        postgres.start()
    recording.join(timeout=90)
    assert rows and store.get("r1").id == rows[0]


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# A gate whose connection drops mid-decision leaves the release as it was, and says so in one line.


@contextmanager
def connection_killed(engine: Engine, admin: Any, *, before_update: bool) -> Iterator[None]:
    """End the gate's backend from another connection (pg_terminate_backend) just before its conditional
    UPDATE of the release, or just before it commits."""

    def kill(conn: Any) -> None:
        pid = conn.connection.dbapi_connection.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))

    def before_execute(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE RELEASES"):
            kill(conn)

    def before_commit(conn: Any) -> None:
        if conn.info.pop("hil_test_updated", False):
            kill(conn)

    def mark(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE RELEASES"):
            conn.info["hil_test_updated"] = True

    hooks: list[tuple[str, Callable[..., None]]] = (
        [("before_cursor_execute", before_execute)]
        if before_update
        else [("after_cursor_execute", mark), ("commit", before_commit)]
    )
    for name, hook in hooks:
        event.listen(engine, name, hook)
    try:
        yield
    finally:
        for name, hook in hooks:
            event.remove(engine, name, hook)


@pytest.mark.parametrize("before_update", [True, False], ids=["mid-decision", "at-commit"])
def test_a_gate_whose_connection_drops_leaves_the_release_as_it_was_and_says_so(
    tmp_path: Path, postgres: PostgresServer, pg_url: str, before_update: bool,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(catalog, "collect", lambda dirs: catalog_of())
    image = write_image(tmp_path / "hil-1.2.0.img")
    write_junit(tmp_path / "results" / "junit.xml", image_sha256=image_sha256(image))
    main(["release", "create", "--store", pg_url, "--version", "1.2.0", "--device-type", "qemux86-64",
          "--image", str(image)])  # fmt: skip
    gate = ["release", "gate", "1", "--store", pg_url, "--results", str(tmp_path / "results")]
    store = SqliteStore(pg_url)
    with postgres.admin() as admin, connection_killed(store.db.engine, admin, before_update=before_update):
        capsys.readouterr()
        assert main(gate) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    if before_update:
        assert "the store connection dropped while deciding release 1: the release is unchanged (" in err
    else:
        assert "while committing the decision on release 1: it may or may not be final (" in err
    assert err.endswith("run the gate again")
    assert store.get("1").status == "draft" and store.evidence("1") == []
    assert main(gate) == 0  # the gate again, on a connection that stays
    assert store.get("1").status == "final"
