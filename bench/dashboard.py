"""Dashboard benchmark: a store of recorded runs (10,000 by default), and how long each page of `hil serve`
takes on it, on the embedded sqlite file, a lab's PostgreSQL, or both side by side.

The runs are made the way the plugin makes them (a JUnit file per session, read by the gate's reader):
three device types, four suites, 31 tests a run, boot phases, one flaky time-sync test. They are written
in batches by bench/bulk.py, the rows RunStore.record writes (`--one-by-one` records each with
RunStore.record instead; `--check-bulk` proves the two write the same rows). Each page is fetched over
HTTP on loopback several times; prints the first (cold) and the median time per page and backend.

    .venv/bin/python bench/dashboard.py [--runs 10000] [--rounds 5]
        [--store PATH|postgresql://USER@HOST/DB [--compare-sqlite]]   # a store of yours (filled up to --runs)
        [--backends sqlite,postgresql]   # throwaway stores; postgresql: a throwaway server (Debian's package)
    .venv/bin/python bench/dashboard.py --check-bulk [--backends sqlite,postgresql]

A throwaway PostgreSQL is started as the store tests start theirs (tests/support/postgres.py): a cluster
in a temporary directory, on a Unix socket only, fsync off. A `--store` URL is used as given: its
database must exist, and it is filled up to --runs (runs it already holds count).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text

from bench.bulk import record_many
from hil.runs.model import Run
from hil.runs.record import SessionInfo, run_from_junit
from hil.runs.store import RunStore
from hil.store.schema import running, runs, test_stats, tests
from hil.store.url import store_url
from tests.support.dashboard_server import serving

DEVICE_TYPES = ("qemux86-64", "raspberrypi4-64", "generic-aarch64")
SUITES = {"boot": 10, "networking": 7, "time_sync": 8, "hostapp_update": 6}
BATCH = 500  # runs made by one worker and written in one transaction
GOAL_MS = 100  # the bound on every page's median
# On tmpfs where there is one: JUnit files are written and read once per run, and a throwaway store is
# bound by fsync otherwise.
SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else None


def write_junit(
    path: Path, run_id: str, started: datetime, device_type: str, version: str, rng: random.Random
) -> None:
    """One session's JUnit file, shaped as the plugin writes it."""
    cases = [(suite, f"test_{suite}_{i}") for suite, count in SUITES.items() for i in range(count)]
    outcomes = ["failed" if (s, n) == ("time_sync", "test_time_sync_3") and rng.random() < 0.2 else
                "skipped" if n.endswith("_6") else "passed" for s, n in cases]  # fmt: skip
    failed = outcomes.count("failed")
    root = ET.Element("testsuites", name="pytest tests")
    suite = ET.SubElement(root, "testsuite", name="pytest", errors="0", failures=str(failed),
                          skipped=str(outcomes.count("skipped")), tests=str(len(cases)), time="300",
                          timestamp=started.isoformat(), hostname="agent")  # fmt: skip
    props = ET.SubElement(suite, "properties")
    sha = hashlib.sha256(version.encode()).hexdigest()
    for name, value in (("hil.rig", f"{device_type}-{rng.randint(1, 3)}"), ("hil.device_type", device_type),
                        ("hil.device_type_source", "image"), ("hil.os_profile", "reference"),
                        ("hil.image", f"/images/{version}.img"), ("hil.image_sha256", sha),
                        ("hil.os_version", version), ("hil.run_id", run_id),
                        ("hil.started", started.isoformat()),
                        ("hil.exitstatus", str(int(failed > 0)))):  # fmt: skip
        ET.SubElement(props, "property", name=name, value=value)
    boot = 8 + rng.random() * 2 + int(version.split(".")[1]) * 0.1
    for (s, n), outcome in zip(cases, outcomes, strict=True):
        case = ET.SubElement(suite, "testcase", classname=f"suites.{s}.test_{s}", name=n,
                             time=f"{rng.random() * 20:.3f}")  # fmt: skip
        cprops = ET.SubElement(case, "properties")
        ET.SubElement(cprops, "property", name="hil.suite", value=s)
        if n == "test_boot_0":
            ET.SubElement(cprops, "property", name="hil.boot_seconds", value=f"{boot:.2f}")
            for phase, share in (("firmware", 0.55), ("kernel", 0.3), ("init", 0.15)):
                ET.SubElement(cprops, "property", name=f"hil.boot_phase.{phase}", value=f"{boot * share:.3f}")
        if outcome == "failed":
            ET.SubElement(case, "failure", message="chrony did not sync within 60 s")
        elif outcome == "skipped":
            ET.SubElement(case, "skipped", type="pytest.skip", message="no wifi on this rig")
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def make_runs(first: int, count: int) -> list[tuple[Run, bytes]]:
    """Runs first .. first+count-1, oldest first, each read from its JUnit file as the plugin reads it.
    The same numbers make the same runs, whichever process makes them."""
    rng, start = random.Random(16 * 1_000_003 + first), datetime(2026, 1, 1, tzinfo=UTC)
    made = []
    with tempfile.TemporaryDirectory(dir=SHM) as tmp:
        junit = Path(tmp) / "junit.xml"
        for i in range(first, first + count):
            device_type = DEVICE_TYPES[i % len(DEVICE_TYPES)]
            version = f"2.{i // 500}.0"
            started = start + timedelta(minutes=30 * i)
            run_id = f"{i:012x}"
            write_junit(junit, run_id, started, device_type, version, rng)
            # A CI build runs each device type once: three runs share a build tag.
            artifacts, tag = Path("/srv/hil/artifacts") / run_id, f"jenkins-hil-{i // len(DEVICE_TYPES) + 1}"
            info = SessionInfo(run_id, started.isoformat(), "", device_type, artifacts, build_tag=tag)
            made.append(run_from_junit(junit, info))
    return made


def fill(store: RunStore, first: int, last: int, one_by_one: bool = False) -> None:
    """Record runs first .. last-1 into `store`: made by worker processes, a batch at a time (a few batches
    ahead at most), written by this one in order."""
    chunks = deque((n, min(BATCH, last - n)) for n in range(first, last, BATCH))
    workers = max(1, min(4, os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        ahead: deque[Future[list[tuple[Run, bytes]]]] = deque()
        while chunks or ahead:
            while chunks and len(ahead) < 2 * workers:
                ahead.append(pool.submit(make_runs, *chunks.popleft()))
            batch = ahead.popleft().result()
            if one_by_one:
                for run, junit in batch:
                    store.record(run, junit)
            else:
                record_many(store, batch)


@dataclass
class Target:
    """One store the pages are timed on: what to call it, and its URL (or sqlite path)."""

    backend: str
    store: str

    @property
    def shown(self) -> str:
        return str(store_url(self.store))


@contextmanager
def throwaway(backend: str) -> Iterator[Target]:
    """An empty store of `backend` that is gone at the end: a sqlite file, or a database on a throwaway
    PostgreSQL server (its cluster on tmpfs too, where there is one)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="hil-bench-", dir=SHM) as tmp:
            yield Target("sqlite", str(Path(tmp) / "s.db"))
        return
    if backend != "postgresql":
        raise SystemExit(f"bench/dashboard.py: unknown backend {backend!r}: sqlite or postgresql")
    from tests.support.postgres import postgres_server  # for start-up speed: psycopg, only when asked

    saved = tempfile.tempdir
    tempfile.tempdir = str(SHM) if SHM else saved
    try:
        with postgres_server() as server:
            tempfile.tempdir = saved
            yield Target("postgresql", server.url(server.create_database()))
    finally:
        tempfile.tempdir = saved


def ensure_filled(target: Target, runs_wanted: int, one_by_one: bool) -> None:
    """Fill the store up to `runs_wanted` runs, saying how long it took and how large it is."""
    store = RunStore(target.store)
    have = store.count()
    if have >= runs_wanted:
        print(f"{target.backend}: {have} runs already in {target.shown}")
        return
    began = time.perf_counter()
    fill(store, have, runs_wanted, one_by_one)
    took = time.perf_counter() - began
    added = runs_wanted - have
    print(f"{target.backend}: recorded {added} runs in {took:.1f} s ({added / took:.0f} runs/s, "
          f"{size_mib(store):.0f} MiB): {target.shown}")  # fmt: skip
    if not store.db.is_sqlite:
        # As autovacuum does soon after so many inserts (PostgreSQL 13 and later): statistics for the
        # planner, and the visibility map that lets counts read the index alone. Outside a transaction.
        with store.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.exec_driver_sql("VACUUM ANALYZE")


def size_mib(store: RunStore) -> float:
    if store.path is not None:
        return store.path.stat().st_size / 2**20
    with store.db.transaction(read_only=True) as db:
        return float(db.execute(text("SELECT pg_database_size(current_database())")).scalar_one()) / 2**20


def pages(store: RunStore) -> list[str]:
    last = store.runs(limit=1)[0].run_id
    flaky = "/history?device_type=qemux86-64&suite=time_sync&test=test_time_sync::test_time_sync_3"
    return ["/", "/rigs", "/runs", "/runs?page=150", f"/runs/{last}", "/trends/qemux86-64", "/trends",
            "/flaky", flaky]  # fmt: skip


def time_pages(target: Target, rounds: int) -> dict[str, tuple[float, float]]:
    """Each page's first and median time, in ms."""
    store = RunStore(target.store)
    found = {}
    # A URL is a str: a Path would be taken for a sqlite file.
    with serving(Path(target.store) if store.db.is_sqlite else target.store) as base:
        for page in pages(store):
            times = []
            for _ in range(rounds):
                began = time.perf_counter()
                with urllib.request.urlopen(base + page, timeout=120) as reply:
                    reply.read()
                times.append(1000 * (time.perf_counter() - began))
            found[page] = (times[0], statistics.median(times))
    return found


def report(targets: list[Target], timed: dict[str, dict[str, tuple[float, float]]], runs_count: int) -> None:
    """A row per page, a cold and a median column per backend; a median over GOAL_MS is marked `!`."""
    names = [t.backend for t in targets]
    head = "".join(f" {n + ' cold':>17} {n + ' median':>17}" for n in names)
    print(f"\n{runs_count} runs; ms per page ({'; '.join(f'{t.backend}: {t.shown}' for t in targets)})")
    print(f"{'page':58}{head}")
    over = []
    for page in timed[names[0]]:
        cells = ""
        for n in names:
            cold, median = timed[n][page]
            cells += f" {cold:17.0f} {median:16.0f}{'!' if median > GOAL_MS else ' '}"
            if median > GOAL_MS:
                over.append(f"{page} on {n}")
        print(f"{page[:58]:58}{cells}")
    print(f"every median under {GOAL_MS} ms" if not over else f"median over {GOAL_MS} ms: {', '.join(over)}")


TABLES = {"runs": runs, "tests": tests, "test_stats": test_stats, "running": running}


def check_bulk(targets: list[Target], count: int) -> int:
    """Record the same runs once with RunStore.record and once with record_many, into two stores of each
    backend, and compare every table row by row; 0 when they agree."""
    made = make_runs(0, count) + make_runs(count, count)  # two batches: tallies add across batches
    failures = 0
    for one, bulk in zip(targets[::2], targets[1::2], strict=True):
        by_record, by_bulk = RunStore(one.store), RunStore(bulk.store)
        for store in (by_record, by_bulk):  # sessions that said they started: recording ends their mark
            for run, _ in made[::20]:
                store.start(run.run_id, run.started, run.rig, Path(run.facts.artifacts))
        for run, junit in made:
            by_record.record(run, junit)
        record_many(by_bulk, made[:count])
        record_many(by_bulk, made[count:])
        for name, table in TABLES.items():
            order = [c for c in table.primary_key.columns] or list(table.columns)
            query = select(table).order_by(*order)
            with by_record.db.transaction(read_only=True) as a, by_bulk.db.transaction(read_only=True) as b:
                left, right = a.execute(query).all(), b.execute(query).all()
                rows = a.execute(select(func.count()).select_from(table)).scalar_one()
            same = left == right
            failures += not same
            print(f"{one.backend}: {name}: {rows} rows, {'the same' if same else 'DIFFERENT'}")
    return int(failures > 0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--store", help="reuse (or fill) this store: a sqlite path or postgresql://...")
    parser.add_argument(
        "--compare-sqlite",
        action="store_true",
        help="with --store: also a throwaway sqlite store of as many runs",
    )
    parser.add_argument(
        "--backends", default="sqlite", help="without --store: throwaway stores (sqlite, postgresql or both)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one-by-one", action="store_true", help="fill with RunStore.record, run by run")
    parser.add_argument(
        "--check-bulk", action="store_true", help="check that a batched fill writes what RunStore.record does"
    )
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    with ExitStack() as stack:
        if args.check_bulk:
            targets = [stack.enter_context(throwaway(b)) for b in backends for _ in range(2)]
            return check_bulk(targets, 100)
        if args.store:
            kind = "sqlite" if store_url(args.store).is_sqlite else "postgresql"
            targets = [Target(kind, args.store)]
            if args.compare_sqlite and kind != "sqlite":
                targets.append(stack.enter_context(throwaway("sqlite")))
        else:
            targets = [stack.enter_context(throwaway(b)) for b in backends]
        for target in targets:
            ensure_filled(target, args.runs, args.one_by_one)
        counts = {RunStore(t.store).count() for t in targets}
        timed = {t.backend: time_pages(t, args.rounds) for t in targets}
        report(targets, timed, max(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
