"""Dashboard benchmark: a store of 10,000 recorded runs, and how long each page of `hil serve` takes on it.

The runs are made the way the plugin makes them (a JUnit file per session, read by the gate's reader,
recorded by the run store): three device types, four suites, 31 tests a run, boot phases, one flaky
time-sync test. Each page is fetched over HTTP on loopback several times; prints the first (cold) and
the median time per page.

    .venv/bin/python bench/dashboard.py [--runs 10000] [--store PATH] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hil.runs.record import SessionInfo, run_from_junit
from hil.runs.store import RunStore
from tests.support.dashboard_server import serving

DEVICE_TYPES = ("qemux86-64", "raspberrypi4-64", "generic-aarch64")
SUITES = {"boot": 10, "networking": 7, "time_sync": 8, "hostapp_update": 6}


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


def fill(store_path: Path, count: int) -> None:
    """Record `count` runs, oldest first."""
    store, rng = RunStore(store_path), random.Random(16)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        for i in range(count):
            device_type = DEVICE_TYPES[i % len(DEVICE_TYPES)]
            version = f"2.{i // 500}.0"
            started = start + timedelta(minutes=30 * i)
            run_id = f"{i:012x}"
            write_junit(junit, run_id, started, device_type, version, rng)
            info = SessionInfo(run_id, started.isoformat(), "", device_type, Path(tmp))
            store.record(*run_from_junit(junit, info))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--store", type=Path, help="reuse (or create) this store")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # On tmpfs where there is one: 10,000 runs recorded one transaction each are otherwise bound by fsync.
    shm = Path("/dev/shm")
    store = (
        args.store or Path(tempfile.mkdtemp(prefix="hil-bench-", dir=shm if shm.is_dir() else None)) / "s.db"
    )
    if not store.exists() or RunStore(store).count() < args.runs:
        began = time.perf_counter()
        fill(store, args.runs - (RunStore(store).count() if store.exists() else 0))
        print(f"recorded {args.runs} runs in {time.perf_counter() - began:.1f} s "
              f"({store.stat().st_size / 2**20:.0f} MiB): {store}")  # fmt: skip
    last = RunStore(store).runs(limit=1)[0].run_id
    flaky = "/history?device_type=qemux86-64&suite=time_sync&test=test_time_sync::test_time_sync_3"
    pages = ["/", "/rigs", "/runs", "/runs?page=150", f"/runs/{last}", "/trends/qemux86-64", "/trends",
             "/flaky", flaky]  # fmt: skip
    with serving(store) as base:
        print(f"{'page':70} {'first ms':>9} {'median ms':>10}")
        for page in pages:
            times = []
            for _ in range(args.rounds):
                began = time.perf_counter()
                with urllib.request.urlopen(base + page, timeout=120) as reply:
                    reply.read()
                times.append(1000 * (time.perf_counter() - began))
            print(f"{page[:70]:70} {times[0]:9.0f} {statistics.median(times):10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
