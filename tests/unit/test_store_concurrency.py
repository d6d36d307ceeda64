"""One lab, many agents: two processes recording 500 runs each into one PostgreSQL at once lose none and
double none, and the per-image test tallies add up to exactly the runs recorded."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from hil.runs.record import SessionInfo, run_from_junit
from hil.runs.store import RunStore
from hil.store.schema import runs, test_stats, tests
from tests.support.postgres import PostgresServer
from tests.support.release_samples import case_id, write_junit

RUNS = 500
SMALL = {"boot": ["test_boots", "test_ssh_answers"]}  # a small JUnit file: two tests
FLAKY = case_id("boot", "test_ssh_answers")


def _agent(url: str, folder: str, name: str, start: Any) -> None:
    """An agent: RUNS runs, each its own transaction; on agent b every other run fails one test."""
    store = RunStore(url)
    made = {}
    for outcome in ("passed", "failed"):
        junit = write_junit(Path(folder) / name / f"{outcome}.xml", suites=SMALL, outcomes={FLAKY: outcome})
        made[outcome] = run_from_junit(junit, SessionInfo(name, "", "rig", "qemux86-64", Path(folder) / name))
    start.wait(timeout=60)
    for i in range(RUNS):
        outcome = "failed" if name == "b" and i % 2 else "passed"
        run, data = made[outcome]
        store.record(replace(run, run_id=f"{name}-{i}", build_tag=f"jenkins-{name}"), data)


def test_two_agents_recording_500_runs_each_at_once_lose_and_double_nothing(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    name = postgres.create_database()
    url = postgres.url(name)
    try:
        RunStore(url)  # migrated once, before the agents start
        spawn = multiprocessing.get_context("spawn")
        start = spawn.Event()
        agents = [spawn.Process(target=_agent, args=(url, str(tmp_path), a, start)) for a in ("a", "b")]
        for agent in agents:
            agent.start()
        start.set()
        for agent in agents:
            agent.join(timeout=240)
            assert agent.exitcode == 0
        store = RunStore(url)
        assert store.count() == 2 * RUNS
        assert (store.count(build_tag="jenkins-a"), store.count(build_tag="jenkins-b")) == (RUNS, RUNS)
        with store.db.transaction(read_only=True) as db:
            assert db.execute(select(func.count(runs.c.run_id.distinct()))).scalar() == 2 * RUNS
            assert db.execute(select(func.count()).select_from(tests)).scalar() == 2 * RUNS * 2
            last = db.execute(select(func.max(runs.c.id))).scalar()
            tallies = {
                row.test: (row.passed, row.failed, row.skipped, row.last_run)
                for row in db.execute(select(test_stats))
            }
        assert tallies == {
            "test_boot::test_boots": (2 * RUNS, 0, 0, last),
            "test_boot::test_ssh_answers": (2 * RUNS - RUNS // 2, RUNS // 2, 0, last),
        }
    finally:
        postgres.drop_database(name)
