"""Fault matrices in the store, and the recorded healthy run that may stand as a control: one suite, run
on sqlite and on PostgreSQL (the `store_url` fixture)."""

from __future__ import annotations

from pathlib import Path

from hil.faults.matrix import Cell, Matrix
from hil.faults.record import FaultStore
from hil.runs.record import SessionInfo, run_from_junit
from hil.runs.store import RunStore
from tests.support.release_samples import IMAGE_SHA256, OTHER_SHA256, case_id, write_junit

SUITES = {"boot": ["test_x", "test_y"]}
X, Y = ("boot", "test_boot::test_x"), ("boot", "test_boot::test_y")


def _matrix(sha: str, profile: str, caught: bool) -> Matrix:
    matrix = Matrix(
        "qemu-x86_64", "qemux86-64", "/i.img", sha, profile, "run r1", "2026-12-06T10:00:00+00:00"
    )
    outcome = "caught" if caught else "missed"
    matrix.cells = [
        Cell("chrony-gone", "boot", outcome, "test_boot::test_x", "AssertionError: x", 3.0, ("a b",))
    ]
    matrix.finished = "2026-12-06T10:05:00+00:00"
    return matrix


def test_the_latest_matrix_of_each_image_and_profile_is_kept_whole(store_url: str) -> None:
    store = FaultStore(store_url)
    store.record(_matrix(IMAGE_SHA256, "reference", caught=False))
    store.record(_matrix(IMAGE_SHA256, "reference", caught=True))
    store.record(_matrix(OTHER_SHA256, "generic", caught=False))
    latest = store.latest()
    assert [(m.image_sha256, m.os_profile, m.passed) for m in latest] == [
        (OTHER_SHA256, "generic", False),
        (IMAGE_SHA256, "reference", True),
    ]
    assert latest[1].cells == _matrix(IMAGE_SHA256, "reference", caught=True).cells
    assert [m.caught for m in store.history()] == [0, 1, 0]


def test_a_matrix_is_read_back_by_its_number_and_reads_are_bounded(store_url: str) -> None:
    store = FaultStore(store_url)
    assert store.newest() == 0 and store.latest() == [] and store.history() == []
    numbers = [
        store.record(_matrix(IMAGE_SHA256, "reference", caught=False)),
        store.record(_matrix(IMAGE_SHA256, "reference", caught=True)),
        store.record(_matrix(OTHER_SHA256, "generic", caught=False)),
    ]
    assert store.newest() == numbers[-1]
    found = store.get(numbers[1])
    assert found is not None and found.id == numbers[1] and found.passed
    assert found.cells == _matrix(IMAGE_SHA256, "reference", caught=True).cells
    assert store.get(numbers[-1] + 1) is None and store.get(0) is None
    assert [m.id for m in store.latest()] == [numbers[2], numbers[1]]  # read back with their numbers
    assert [m.id for m in store.latest(limit=1)] == [numbers[2]]
    assert [m.id for m in store.history(limit=2)] == numbers[1:]  # the newest two, oldest first


def _record_run(store: RunStore, folder: Path, run_id: str, sha: str, outcomes: dict[str, str]) -> None:
    ids = {case_id("boot", k): v for k, v in outcomes.items()}
    path = write_junit(
        folder / run_id / "junit.xml", run_id=run_id, suites=SUITES, outcomes=ids, image_sha256=sha
    )
    info = SessionInfo(run_id, "2026-12-06T09:00:00+00:00", "qemu-x86_64", "qemux86-64", path.parent)
    store.record(*run_from_junit(path, info))


def test_a_recorded_run_stands_as_control_only_when_the_named_tests_passed_on_that_image(
    tmp_path: Path, store_url: str
) -> None:
    runs = RunStore(store_url)
    _record_run(runs, tmp_path, "healthy", IMAGE_SHA256, {})
    _record_run(runs, tmp_path, "y-failed", IMAGE_SHA256, {"test_y": "failed"})
    _record_run(runs, tmp_path, "other-image", OTHER_SHA256, {})
    faults = FaultStore(store_url)
    assert faults.healthy_run(IMAGE_SHA256, {X}) == "y-failed"  # the newest in which test_x passed
    assert faults.healthy_run(IMAGE_SHA256, {X, Y}) == "healthy"
    assert faults.healthy_run(OTHER_SHA256, {("boot", "test_boot::test_z")}) is None
    assert faults.healthy_run("0" * 64, {X}) is None
