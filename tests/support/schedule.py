"""How hil's own tests are spread over the xdist workers: whole files, the longest first, and no file
promised to a worker that is still busy with a long test when another worker will be free sooner.

Two cores run two QEMU boards at most, and a handful of end-to-end files take most of a run, so how they
fall on the two workers decides the run's length. xdist's own `--dist loadfile` reorders files by how
many tests they hold (the end-to-end files, with few tests, went last) and hands a worker its next file
while two of its tests are still to run, so a long file could wait behind a long test while the other
worker idled. Here a file's expected seconds come from tests/durations.json (seconds per test, measured by
earlier runs); a worker that must be given work (an xdist worker starts a test only once it holds the
next one) gets the longest file waiting, unless the one test it holds will outlast another worker, in
which case it gets the shortest file, which costs little there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling
from xdist.workermanage import WorkerController

DURATIONS = Path(__file__).resolve().parents[1] / "durations.json"
NOTE = (
    "Seconds each test took in a run of scripts/test (setup and teardown included), for the end-to-end "
    "tests and the others of two seconds or more; tests/support/schedule.py spreads whole files over the "
    "xdist workers by them. Refresh: python -m tests.support.schedule build/ci-junit.xml"
)
# Seconds for a test tests/durations.json does not name yet: an end-to-end test boots boards, so a new one
# is taken for long rather than left to run last, alone; most other tests take well under a second.
UNKNOWN_E2E, UNKNOWN = 120.0, 0.5


def measured() -> dict[str, float]:
    """Seconds per test node id, as tests/durations.json keeps them."""
    return {k: float(v) for k, v in json.loads(DURATIONS.read_text()).items() if "::" in k}


def seconds_of(nodeid: str, durations: Mapping[str, float]) -> float:
    """A test's expected seconds: as measured, else a guess by where it lives."""
    if nodeid in durations:
        return durations[nodeid]
    return UNKNOWN_E2E if _end_to_end(nodeid) else UNKNOWN


def _end_to_end(nodeid: str) -> bool:
    return nodeid.startswith("tests/e2e/")


def file_seconds(items: list[pytest.Item], durations: Mapping[str, float]) -> dict[str, float]:
    """Each test file's expected seconds: the sum of its tests'."""
    totals: dict[str, float] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        totals[path] = totals.get(path, 0.0) + seconds_of(item.nodeid, durations)
    return totals


class LongestFileFirst(LoadFileScheduling):
    """`--dist loadfile` with the files taken in collection order (the longest first: see
    tests/conftest.py) and the next file chosen by when each worker will be free."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        config.option.loadscopereorder = False  # keep the collection's longest-first order of files
        super().__init__(config, log)
        self.durations = measured()

    def _held(self, node: WorkerController) -> list[str]:
        return [
            nodeid
            for unit in self.assigned_work.get(node, {}).values()
            for nodeid, done in unit.items()
            if not done
        ]

    def _seconds(self, nodeids: list[str]) -> float:
        return sum(seconds_of(nodeid, self.durations) for nodeid in nodeids)

    def _reschedule(self, node: WorkerController) -> None:
        """Give `node` files until it holds two tests (the one it runs and the next), or shut it down."""
        if node.shutting_down:
            return
        while len(held := self._held(node)) < 2:
            if not self.workqueue:
                node.shutdown()
                return
            busy = self._seconds(held)
            others = [self._seconds(self._held(other)) for other in self.nodes if other is not node]
            shortest = bool(held) and any(other < busy for other in others)
            scope, unit = self.workqueue.popitem(last=shortest)
            self.assigned_work.setdefault(node, {})[scope] = unit
            collection = self.registered_collections[node]
            node.send_runtest_some([collection.index(nodeid) for nodeid, done in unit.items() if not done])


def refresh(junit: Path, floor: float = 2.0) -> dict[str, object]:
    """tests/durations.json from a run's JUnit file (scripts/test writes build/ci-junit.xml): every test
    of `floor` seconds or more (setup and teardown included) and every end-to-end test, in whole seconds."""
    import math
    import xml.etree.ElementTree as ET

    out: dict[str, float] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        seconds = float(case.get("time", "0"))
        nodeid = _nodeid(case.get("classname", ""), case.get("name", ""))
        if seconds >= floor or _end_to_end(nodeid):  # an end-to-end test left out would count long
            out[nodeid] = math.ceil(seconds)
    return {"_": NOTE, **dict(sorted(out.items(), key=lambda kv: -kv[1]))}


def _nodeid(classname: str, name: str) -> str:
    """A JUnit classname (`tests.unit.test_x` or `tests.unit.test_x.TestY`) and name as a pytest node id."""
    parts = classname.split(".")
    for cut in range(len(parts), 0, -1):
        module = "/".join(parts[:cut]) + ".py"
        if (DURATIONS.parents[1] / module).is_file():
            return "::".join([module, *parts[cut:], name])
    return f"{classname}::{name}"


if __name__ == "__main__":
    import sys

    DURATIONS.write_text(json.dumps(refresh(Path(sys.argv[1])), indent=1) + "\n")
