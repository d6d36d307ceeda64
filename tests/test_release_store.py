"""The sqlite release store: drafts become final once, in a transaction, with every decision's evidence."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from release_samples import SUITES, case_id, write_junit

from hil.errors import GateRefused, HilError
from hil.release import gate_release, gate_run
from hil.release.sqlite_store import SqliteStore, default_store_path
from hil.release.store import ALREADY_FINAL, DRY_RUN, FINALIZED


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Reports land in the cache by default: keep them out of the user's."""
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HIL_RELEASE_STORE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "releases.sqlite")


@pytest.fixture
def passing(tmp_path: Path) -> Path:
    """A passing run split the way agents leave it: one JUnit file per suite."""
    for suite, names in SUITES.items():
        write_junit(tmp_path / "results" / f"{suite}.xml", suites={suite: names}, run_id=f"run-{suite}")
    return tmp_path / "results"


def test_a_new_release_is_a_draft(store: SqliteStore) -> None:
    release = store.create("1.2.0", ["qemux86-64", "qemux86-64"])
    assert (release.version, release.device_types, release.status) == ("1.2.0", ("qemux86-64",), "draft")
    assert store.get(release.id) == release
    assert store.releases() == [release]


def test_an_unknown_release_is_an_error(store: SqliteStore) -> None:
    with pytest.raises(HilError, match="release 99 is not in"):
        store.get("99")
    with pytest.raises(HilError, match="not a number"):
        store.get("v1")


def test_the_store_defaults_to_the_cache_and_honours_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    assert default_store_path() == cache / "releases.sqlite"
    monkeypatch.setenv("HIL_RELEASE_STORE", str(tmp_path / "elsewhere.sqlite"))
    assert default_store_path() == tmp_path / "elsewhere.sqlite"


def test_passing_evidence_finalizes_and_is_recorded(
    store: SqliteStore, passing: Path, tmp_path: Path
) -> None:
    release = store.create("1.2.0", ["qemux86-64"])
    result = gate_release(store, release.id, results=[passing], report_dir=tmp_path / "report")
    assert (result.outcome, result.exit_code) == (FINALIZED, 0)
    after = store.get(release.id)
    assert after.status == "final" and after.finalized_at
    (evidence,) = store.evidence(release.id)
    assert evidence["outcome"] == FINALIZED
    assert evidence["decision"]["verdict"] == "final"
    assert len(evidence["policy"]["sha256"]) == 64
    assert set(evidence["results"]["files"]) == {str(passing / f"{s}.xml") for s in SUITES}
    assert {(c["suite"], c["state"]) for c in evidence["decision"]["cells"]} == {
        (s, "passed") for s in SUITES
    }
    assert len(evidence["attempts"]) == 14
    assert "@" in evidence["who"]


def test_finalizing_a_final_release_is_a_no_op_that_says_so(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", ["qemux86-64"])
    gate_release(store, release.id, results=[passing])
    finalized_at = store.get(release.id).finalized_at
    again = gate_release(store, release.id, results=[passing])
    assert again.outcome == ALREADY_FINAL
    assert "already final" in again.text
    assert store.get(release.id).finalized_at == finalized_at
    assert [e["outcome"] for e in store.evidence(release.id)] == [FINALIZED, ALREADY_FINAL]


def test_deleting_one_result_file_refuses_and_keeps_the_draft(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", ["qemux86-64"])
    (passing / "time_sync.xml").unlink()
    result = gate_release(store, release.id, results=[passing])
    assert result.exit_code == 1
    assert "qemux86-64/time_sync: no results" in result.text
    assert store.get(release.id).status == "draft"
    (evidence,) = store.evidence(release.id)
    assert evidence["outcome"] == "not finalized"
    assert "qemux86-64/time_sync: no results" in evidence["decision"]["reasons"]


def test_flipping_one_test_to_failed_refuses(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", ["qemux86-64"])
    failing = case_id("boot", "test_no_failed_units")
    write_junit(passing / "boot.xml", suites={"boot": SUITES["boot"]}, outcomes={failing: "failed"})
    result = gate_release(store, release.id, results=[passing])
    assert result.exit_code == 1
    assert f"qemux86-64/boot: {failing} failed" in result.text
    assert store.get(release.id).status == "draft"


def test_a_dry_run_changes_nothing(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", ["qemux86-64"])
    result = gate_release(store, release.id, results=[passing], dry_run=True)
    assert (result.outcome, result.exit_code) == (DRY_RUN, 0)
    assert store.get(release.id).status == "draft"
    assert store.evidence(release.id) == []


def test_an_invalidated_release_never_becomes_final(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", ["qemux86-64"])
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE releases SET status = 'invalidated' WHERE id = ?", (int(release.id),))
    result = gate_release(store, release.id, results=[passing])
    assert result.exit_code == 1
    assert f"release {release.id} is invalidated" in result.decision.reasons
    with pytest.raises(GateRefused, match="invalidated"):
        store.finalize(release.id, result.evidence)


def test_reports_hold_the_table_and_link_failing_tests_artifacts(
    store: SqliteStore, passing: Path, tmp_path: Path
) -> None:
    failing = case_id("networking", "test_resolves_names")
    (passing / "artifacts").mkdir()
    (passing / "artifacts" / "dmesg.txt").write_text("eth0: link down")
    write_junit(
        passing / "networking.xml",
        suites={"networking": SUITES["networking"]},
        outcomes={failing: "failed"},
        artifacts={failing: "artifacts/dmesg.txt"},
    )
    release = store.create("1.2.0", ["qemux86-64"])
    result = gate_release(store, release.id, results=[passing], report_dir=tmp_path / "report")
    md = (tmp_path / "report" / "summary.md").read_text()
    page = (tmp_path / "report" / "summary.html").read_text()
    assert "| qemux86-64 | networking | failed | 2 | 1 | 0 | 3 |" in md
    assert "[dmesg.txt](../results/artifacts/dmesg.txt)" in md
    assert '<a href="../results/artifacts/dmesg.txt">dmesg.txt</a>' in page
    assert (tmp_path / "report" / "evidence.json").is_file()
    assert result.report_dir == tmp_path / "report"


def test_hil_run_gates_a_draft_it_finds_or_creates(tmp_path: Path, passing: Path) -> None:
    path = tmp_path / "store.sqlite"
    first = gate_run(results=[passing], version="1.2.0", device_types=["qemux86-64"], policy=None, store=path)
    again = gate_run(results=[passing], version="1.2.0", device_types=["qemux86-64"], policy=None, store=path)
    assert (first.outcome, again.outcome) == (FINALIZED, ALREADY_FINAL)
    assert first.finalized and again.finalized
    assert first.decision.release_id == again.decision.release_id
    assert "passed" in first.text


def test_hil_run_gates_the_version_the_dut_reported(tmp_path: Path, passing: Path) -> None:
    image = tmp_path / "hil-1.2.0.img"
    result = gate_run(
        results=[passing], device_types=["qemux86-64"], image=image, store=tmp_path / "s.sqlite"
    )
    assert result.finalized
    assert result.decision.version == "1.2.0"
    assert result.evidence["image"] == str(image)


def test_hil_run_will_not_guess_between_two_reported_versions(tmp_path: Path, passing: Path) -> None:
    write_junit(passing / "old.xml", version="1.1.9", suites={"boot": SUITES["boot"]})
    with pytest.raises(GateRefused, match=r"OS versions 1\.1\.9, 1\.2\.0"):
        gate_run(results=[passing], device_types=["qemux86-64"], store=tmp_path / "s.sqlite")


def _gate_in_a_process(store_path: str, release_id: str, results: str, barrier) -> str:
    barrier.wait(timeout=60)
    return gate_release(SqliteStore(Path(store_path)), release_id, results=[Path(results)]).outcome


def test_two_gate_processes_at_once_finalize_once(tmp_path: Path, passing: Path) -> None:
    store = SqliteStore(tmp_path / "shared.sqlite")
    spawn = multiprocessing.get_context("spawn")
    for _ in range(3):
        release = store.create("1.2.0", ["qemux86-64"])
        with spawn.Manager() as manager:
            barrier = manager.Barrier(2)
            with spawn.Pool(2) as pool:
                jobs = [
                    pool.apply_async(_gate_in_a_process, (str(store.path), release.id, str(passing), barrier))
                    for _ in range(2)
                ]
                outcomes = sorted(job.get(timeout=120) for job in jobs)
        assert outcomes == [ALREADY_FINAL, FINALIZED]
        recorded = [e["outcome"] for e in store.evidence(release.id)]
        assert recorded.count(FINALIZED) == 1
