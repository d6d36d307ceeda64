"""The dashboard over a whole lab, on sqlite and on PostgreSQL (the `store_url` fixture): every rig's
newest check from any agent with a link to its console, who holds each lease with its heartbeat, a lease
whose holder stopped beating shown as stale, and `hil serve` naming a PostgreSQL store without its
password."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hil.lab.lab_store import LabStore, LeaseRow
from hil.lab.locking import Lease
from hil.runs.store import RunStore
from tests.support.dashboard_server import serving
from tests.support.postgres import PostgresServer
from tests.unit.test_dashboard import fetch


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This host's rig files (one virtual rig `vm` of two instances) and cache (its locks)."""
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    (rigs / "vm.yaml").write_text("kind: qemu\ndevice_type: qemux86-64\ninstances: 2\n")
    monkeypatch.setenv("HIL_RIGS_DIR", str(rigs))
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def row(page: str, rig: str) -> str:
    found = re.search(rf'<tr id="rig-{re.escape(rig)}">(.*?)</tr>', page, re.DOTALL)
    assert found, f"no row of {rig}"
    return found.group(1)


def test_the_lab_page_shows_every_agents_checks_and_leases(lab: Path, store_url: str) -> None:
    RunStore(store_url)  # an empty store, as the first `hil run` leaves it
    store, now = LabStore(store_url), datetime.now(UTC)
    checked = store.record_check("bench-far", False, "serial: silent", now, b"U-Boot 2024.01\r\n", "agent-2")
    store.record_check("vm", True, "", now, None, "agent-1")
    store.hold(LeaseRow("vm#1", "agent-1", 4242, "jenkins-hil-7: hil run", now, now))
    an_hour_ago = now - timedelta(hours=1)
    store.hold(LeaseRow("bench-far", "agent-2", 77, "alice: hil rig hold", an_hour_ago, an_hour_ago))
    with Lease("vm#0", lab / "leases") as held, serving(store_url, artifact_roots=[]) as url:
        status, _, page = fetch(f"{url}/rigs")
        assert status == 200, page[-2000:]
        far, vm = row(page, "bench-far"), row(page, "vm")
        assert "no rig file on this host" in far  # known from the store alone
        assert "unhealthy" in far and "serial: silent" in far and "on agent-2" in far
        assert 'class="flag stale">stale' in far and "agent-2:77" in far and "alice: hil rig hold" in far
        assert "vm#1: agent-1:4242" in vm and "jenkins-hil-7: hil run" in vm and "heartbeat" in vm
        assert f"vm#0: {held.holder().host}:" in vm and "this host's lock only" in vm  # type: ignore[union-attr]
        assert "flag stale" not in vm and "healthy" in vm and "on agent-1" in vm
        assert f'href="/checks/{checked}/console"' in far and "/console" not in vm  # vm's check kept none
        status, headers, console = fetch(f"{url}/checks/{checked}/console")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        assert "hil rig check of bench-far on agent-2" in console and "U-Boot 2024.01" in console
        assert fetch(f"{url}/checks/{checked + 100}/console")[0] == 404
        status, _, overview = fetch(f"{url}/")
        assert status == 200 and 'class="flag stale">stale' in row(overview, "bench-far")


def test_a_lease_is_stale_after_the_dashboards_stale_after(lab: Path, tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    RunStore(store_path)
    now = datetime.now(UTC)
    LabStore(store_path).hold(LeaseRow("vm#1", "agent-1", 4242, "x", now, now - timedelta(seconds=5)))
    for stale_after, stale in ((3600.0, False), (1.0, True)):
        with serving(store_path, artifact_roots=[], stale_after=stale_after) as url:
            assert ("flag stale" in row(fetch(f"{url}/rigs")[2], "vm")) is stale


def test_serve_takes_a_postgresql_url_and_prints_it_masked(postgres: PostgresServer, lab: Path) -> None:
    name = postgres.create_database()
    try:
        url = postgres.url(name).replace("postgresql://hil@", "postgresql://hil:s3cret@")  # trust: unused
        RunStore(url)
        child = subprocess.Popen(
            [sys.executable, "-m", "hil", "serve", "--store", url, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
        finally:
            child.terminate()
            _, err = child.communicate(timeout=30)
        assert "s3cret" not in line + err
        assert f"dashboard of postgresql://hil:***@/{name}?host=" in line, line + err
        assert "artifact roots: none (no run files are served)" in line
    finally:
        postgres.drop_database(name)
