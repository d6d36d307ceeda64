"""How hil's own CI spreads test files over its two xdist workers (tests/support/schedule.py): the
longest files first, and a long file never promised to a worker still busy with a long test."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.schedule import LongestFileFirst, refresh, seconds_of

SECONDS = {"a.py::a1": 10, "a.py::a2": 500, "b.py::b1": 300, "b.py::b2": 1, "c.py::c1": 200, "e.py::e1": 2}
COLLECTION = ["a.py::a1", "a.py::a2", "b.py::b1", "b.py::b2", "c.py::c1", "e.py::e1", "d.py::d1"]


class Node:
    """What the scheduler sees of an xdist worker: the tests it was sent, and whether it was told to stop."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[str] = []
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.extend(COLLECTION[i] for i in indices)

    def shutdown(self) -> None:
        self.shutting_down = True


@pytest.fixture
def scheduled(pytester: pytest.Pytester) -> tuple[LongestFileFirst, Node, Node]:
    sched = LongestFileFirst(pytester.parseconfig("--tx", "2*popen", "--dist", "loadfile"))
    sched.durations = {k: float(v) for k, v in SECONDS.items()}
    nodes = Node("gw0"), Node("gw1")
    for node in nodes:
        sched.add_node(node)  # type: ignore[arg-type]
        sched.add_node_collection(node, COLLECTION)  # type: ignore[arg-type]
    sched.schedule()
    return sched, *nodes


def test_files_go_longest_first_not_by_how_many_tests_they_hold(
    scheduled: tuple[LongestFileFirst, Node, Node],
) -> None:
    _, gw0, gw1 = scheduled
    assert gw0.sent == ["a.py::a1", "a.py::a2"]  # 510 s in two tests
    assert gw1.sent == ["b.py::b1", "b.py::b2"]  # 301 s


def test_a_worker_about_to_run_a_long_test_gets_the_shortest_file_and_the_other_the_long_one(
    scheduled: tuple[LongestFileFirst, Node, Node],
) -> None:
    sched, gw0, gw1 = scheduled
    sched.mark_test_complete(gw0, COLLECTION.index("a.py::a1"))  # type: ignore[arg-type]
    # gw0 now holds a2 (500 s), which outlasts all gw1 holds (301 s): it gets the shortest file as its next.
    assert gw0.sent[2:] == ["d.py::d1"]
    sched.mark_test_complete(gw1, COLLECTION.index("b.py::b1"))  # type: ignore[arg-type]
    assert gw1.sent[2:] == ["c.py::c1"]  # gw1 frees first, so the long file waits for it, not for a2
    for nodeid in ("b.py::b2", "c.py::c1"):
        sched.mark_test_complete(gw1, COLLECTION.index(nodeid))  # type: ignore[arg-type]
    assert gw1.sent[3:] == ["e.py::e1"] and gw1.shutting_down  # the last file, then the end of its work


def test_durations_come_from_a_junit_file_of_a_run(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.unit.test_ci_schedule" name="test_x[a]" time="3.2"/>'
        '<testcase classname="tests.unit.test_ci_schedule" name="test_y" time="0.4"/>'
        "</testsuite></testsuites>"
    )
    got = refresh(junit)
    assert {k: v for k, v in got.items() if k != "_"} == {"tests/unit/test_ci_schedule.py::test_x[a]": 4}


def test_a_test_not_yet_measured_is_taken_for_long_when_it_boots_boards() -> None:
    measured = {"tests/unit/test_a.py::t": 30.0}
    assert seconds_of("tests/unit/test_a.py::t", measured) == 30
    assert seconds_of("tests/e2e/test_new.py::t", measured) > 30  # so a new e2e file is not left to run last
    assert seconds_of("tests/unit/test_new.py::t", measured) < 1
