"""The release store and the gate around it, on sqlite and on PostgreSQL (the `store_url` fixture): drafts
name their image by content hash and become final once, in a transaction, with every decision's evidence;
reports are written before the store moves."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import update

from hil.errors import GateRefused, HilError
from hil.images.hash import image_sha256
from hil.release import api, gate_release, gate_run
from hil.release.sqlite_store import SqliteStore, default_store_path
from hil.release.store import ALREADY_FINAL, DRY_RUN, FINALIZED, ReleaseImage
from hil.store.schema import releases
from tests.support.release_samples import (
    IMAGE,
    OTHER_SHA256,
    SUITES,
    case_id,
    catalog_of,
    write_image,
    write_junit,
)

IMAGES = {"qemux86-64": IMAGE}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Reports and image hashes land in the cache by default: keep them out of the user's."""
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("HIL_RELEASE_STORE", raising=False)
    monkeypatch.delenv("HIL_STORE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def store(store_url: str) -> SqliteStore:
    return SqliteStore(store_url)


def set_status(store: SqliteStore, release_id: str, status: str) -> None:
    """What another tool (or a person with psql) might do behind the store's back."""
    with store.db.transaction() as db:
        db.execute(update(releases).where(releases.c.id == int(release_id)).values(status=status))


@pytest.fixture
def passing(tmp_path: Path) -> Path:
    """A passing run split the way agents leave it: one JUnit file per suite."""
    for suite, names in SUITES.items():
        write_junit(tmp_path / "results" / f"{suite}.xml", suites={suite: names}, run_id=f"run-{suite}")
    return tmp_path / "results"


def gate(store: SqliteStore, release_id: str, results: Path, **kwargs) -> api.GateResult:
    return gate_release(store, release_id, results=[results], catalog=catalog_of(), **kwargs)


def test_a_new_release_is_a_draft_naming_its_image(store: SqliteStore) -> None:
    release = store.create("1.2.0", IMAGES)
    assert (release.version, release.device_types, release.status) == ("1.2.0", ("qemux86-64",), "draft")
    assert release.images == IMAGES
    assert store.get(release.id) == release
    assert store.releases() == [release]


def test_an_unknown_release_is_an_error(store: SqliteStore) -> None:
    with pytest.raises(HilError, match="release 99 is not in"):
        store.get("99")
    with pytest.raises(HilError, match="is not a release number"):
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
    release = store.create("1.2.0", IMAGES)
    result = gate(store, release.id, passing, report_dir=tmp_path / "report")
    assert (result.outcome, result.exit_code) == (FINALIZED, 0)
    after = store.get(release.id)
    assert after.status == "final" and after.finalized_at
    (evidence,) = store.evidence(release.id)
    assert evidence["outcome"] == FINALIZED
    assert evidence["decision"]["verdict"] == "final"
    assert len(evidence["policy"]["sha256"]) == 64
    assert evidence["images"] == {"qemux86-64": {"sha256": IMAGE.sha256, "path": IMAGE.path}}
    assert evidence["suites"]["tests"] == {s: len(n) for s, n in SUITES.items()}
    assert set(evidence["results"]["files"]) == {str(passing / f"{s}.xml") for s in SUITES}
    assert {(c["suite"], c["state"]) for c in evidence["decision"]["cells"]} == {
        (s, "passed") for s in SUITES
    }
    assert len(evidence["attempts"]) == 14
    assert {s["image_sha256"] for s in evidence["sessions"]} == {IMAGE.sha256}
    assert {s["device_type_source"] for s in evidence["sessions"]} == {"image"}
    assert "@" in evidence["who"]


def test_finalizing_a_final_release_is_a_no_op_that_says_so(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", IMAGES)
    gate(store, release.id, passing)
    final = store.get(release.id)
    assert final.finalized_by == api.who()
    again = gate(store, release.id, passing)
    # Who finalized it, and when: the gate that did not says so.
    told = f"{ALREADY_FINAL} by {api.who()} at {final.finalized_at}"
    assert again.outcome == told and again.finalized
    assert told in again.text
    assert store.get(release.id).finalized_at == final.finalized_at
    assert [e["outcome"] for e in store.evidence(release.id)] == [FINALIZED, told]


def test_deleting_one_result_file_refuses_and_keeps_the_draft(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", IMAGES)
    (passing / "time_sync.xml").unlink()
    result = gate(store, release.id, passing)
    assert result.exit_code == 1
    assert "qemux86-64/time_sync: no results" in result.text
    assert store.get(release.id).status == "draft"
    (evidence,) = store.evidence(release.id)
    assert evidence["outcome"] == "not finalized"
    assert "qemux86-64/time_sync: no results" in evidence["decision"]["reasons"]


def test_flipping_one_test_to_failed_refuses(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", IMAGES)
    failing = case_id("boot", "test_no_failed_units")
    write_junit(passing / "boot.xml", suites={"boot": SUITES["boot"]}, outcomes={failing: "failed"})
    result = gate(store, release.id, passing)
    assert result.exit_code == 1
    assert f"qemux86-64/boot: {failing} failed" in result.text
    assert store.get(release.id).status == "draft"


def test_a_dry_run_changes_nothing(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", IMAGES)
    result = gate(store, release.id, passing, dry_run=True)
    assert (result.outcome, result.exit_code) == (DRY_RUN, 0)
    assert store.get(release.id).status == "draft"
    assert store.evidence(release.id) == []


def test_an_invalidated_release_never_becomes_final(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", IMAGES)
    set_status(store, release.id, "invalidated")
    result = gate(store, release.id, passing)
    assert result.exit_code == 1
    assert f"release {release.id} is invalidated" in result.decision.reasons
    with pytest.raises(GateRefused, match="invalidated"):
        store.finalize(release.id, result.evidence)


def test_an_image_named_at_the_gate_must_be_the_releases(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", IMAGES)
    other = ReleaseImage(sha256=OTHER_SHA256, path="/tmp/other.img")
    result = gate(store, release.id, passing, images={"qemux86-64": other})
    assert result.exit_code == 1
    assert (
        f"--image /tmp/other.img (sha256 {OTHER_SHA256}) is not the image release {release.id} ships"
        in result.text
    )


def test_an_interrupted_session_reported_by_the_caller_refuses(store: SqliteStore, passing: Path) -> None:
    release = store.create("1.2.0", IMAGES)
    result = gate(store, release.id, passing, session_status=2)
    assert result.exit_code == 1
    assert "pytest ended with exit status 2" in result.text
    assert store.get(release.id).status == "draft"


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
    release = store.create("1.2.0", IMAGES)
    result = gate(store, release.id, passing, report_dir=tmp_path / "report")
    md = (tmp_path / "report" / "summary.md").read_text()
    page = (tmp_path / "report" / "summary.html").read_text()
    assert "| qemux86-64 | networking | failed | 2 | 1 | 0 | 3 |" in md
    assert "[dmesg.txt](../results/artifacts/dmesg.txt)" in md
    assert '<a href="../results/artifacts/dmesg.txt">dmesg.txt</a>' in page
    assert (tmp_path / "report" / "evidence.json").is_file()
    assert result.report_dir == tmp_path / "report"


# Issue 11, point 5: nothing changes in the store before the reports are written, and the exit status
# and the output always say what the store did.


def test_an_unwritable_report_dir_leaves_the_release_draft_and_says_so(
    store: SqliteStore, passing: Path, tmp_path: Path
) -> None:
    release = store.create("1.2.0", IMAGES)
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(
        HilError, match=rf"cannot write the gate report to .*; release {release.id} was left as it was"
    ):
        gate(store, release.id, passing, report_dir=tmp_path / "not-a-dir" / "report")
    assert store.get(release.id).status == "draft"
    assert store.evidence(release.id) == []


def test_a_report_that_cannot_be_updated_after_finalizing_is_a_warning_not_a_refusal(
    store: SqliteStore, passing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = []
    real = api._write_reports

    def second_write_fails(out_dir: Path, decision, outcome: str, evidence: dict, *plots: object) -> None:
        writes.append(outcome)
        if len(writes) == 2:
            raise OSError(28, "No space left on device")
        real(out_dir, decision, outcome, evidence, *plots)

    monkeypatch.setattr(api, "_write_reports", second_write_fails)
    release = store.create("1.2.0", IMAGES)
    result = gate(store, release.id, passing, report_dir=tmp_path / "report")
    assert writes == [api.PENDING, FINALIZED]
    assert (result.outcome, result.exit_code, store.get(release.id).status) == (FINALIZED, 0, "final")
    assert "warning: the report in" in result.text and "the store says: finalized" in result.text
    assert "store has not confirmed it yet" in (tmp_path / "report" / "summary.md").read_text()


# `hil run`: the draft of the image it ran, found or created.


def test_hil_run_gates_a_draft_of_its_image_it_finds_or_creates(tmp_path: Path, store_url: str) -> None:
    image = write_image(tmp_path / "images" / "hil-1.2.0.img")
    results = tmp_path / "results"
    write_junit(results / "junit.xml", image_sha256=image_sha256(image))
    path = store_url
    common = {
        "results": [results],
        "device_type": "qemux86-64",
        "image": image,
        "catalog": catalog_of(),
        "store": path,
    }
    first = gate_run(version="1.2.0", **common)
    again = gate_run(**common)  # the version the DUT reported
    assert first.outcome == FINALIZED and again.outcome.startswith(f"{ALREADY_FINAL} by ")
    assert first.finalized and again.finalized
    assert first.decision.release_id == again.decision.release_id
    release = SqliteStore(path).get(first.decision.release_id)
    assert release.images["qemux86-64"].sha256 == image_sha256(image)


def test_hil_run_refuses_results_about_another_image(tmp_path: Path) -> None:
    image = write_image(tmp_path / "hil-1.2.0.img")
    write_junit(tmp_path / "results" / "junit.xml", image_sha256=OTHER_SHA256)
    result = gate_run(results=[tmp_path / "results"], device_type="qemux86-64", image=image, version="1.2.0",
                      catalog=catalog_of(), store=tmp_path / "s.sqlite")  # fmt: skip
    assert not result.finalized
    assert any(f"are about image sha256 {OTHER_SHA256}" in r for r in result.decision.reasons)


def test_hil_run_will_not_reuse_a_version_that_is_final_with_another_image(
    store: SqliteStore, tmp_path: Path
) -> None:
    final = store.create("1.2.0", IMAGES)
    set_status(store, final.id, "final")
    image = write_image(tmp_path / "hil-1.2.0.img")
    with pytest.raises(
        GateRefused, match=rf"release {final.id} of version 1.2.0 is already final with other images"
    ):
        store.find_or_create_draft("1.2.0", {"qemux86-64": ReleaseImage(image_sha256(image), str(image))})


def test_hil_run_will_not_guess_between_two_reported_versions(tmp_path: Path, passing: Path) -> None:
    image = write_image(tmp_path / "hil-1.2.0.img")
    for path in passing.glob("*.xml"):
        path.write_text(path.read_text().replace(IMAGE.sha256, image_sha256(image)))
    write_junit(
        passing / "old.xml",
        version="1.1.9",
        suites={"boot": SUITES["boot"]},
        image_sha256=image_sha256(image),
    )
    with pytest.raises(GateRefused, match=r"OS versions 1\.1\.9, 1\.2\.0"):
        gate_run(results=[passing], device_type="qemux86-64", image=image, catalog=catalog_of(),
                 store=tmp_path / "s.sqlite")  # fmt: skip


# Issue 11, point 8: a store that is not one, or not there, is a one-line error.


def test_a_store_path_under_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HilError, match=r"folder .*/missing does not exist"):
        SqliteStore(tmp_path / "missing" / "releases.sqlite")
    assert not (tmp_path / "missing").exists()


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "releases.sqlite"
    path.write_text("these are not the releases you are looking for\n" * 100)
    with pytest.raises(HilError, match=r"is not a usable release store \(file is not a database\)"):
        SqliteStore(path)
    directory = tmp_path / "a-dir"
    directory.mkdir()
    with pytest.raises(HilError, match="is not a file"):
        SqliteStore(directory)


def test_a_sqlite_database_of_something_else_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(HilError, match="is a sqlite database of something else"):
        SqliteStore(path)
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["photos"]


def test_a_store_from_before_images_gains_the_column_and_its_releases_cannot_be_final(
    tmp_path: Path, passing: Path
) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE releases (id INTEGER PRIMARY KEY, version TEXT NOT NULL, "
            "device_types TEXT NOT NULL, status TEXT NOT NULL, created TEXT NOT NULL, finalized_at TEXT)"
        )
        db.execute("INSERT INTO releases VALUES (1, '1.2.0', '[\"qemux86-64\"]', 'draft', 'then', NULL)")
    store = SqliteStore(path)
    assert store.get("1").images == {}
    result = gate(store, "1", passing)
    assert result.exit_code == 1
    assert any(r.startswith("release 1 names no image for qemux86-64") for r in result.decision.reasons)


@pytest.mark.parametrize("text", ["", "-1", "+1", "1.0", "²", "9" * 19, "9" * 5000])
def test_a_release_id_that_is_not_a_release_number_is_one_line(store: SqliteStore, text: str) -> None:
    with pytest.raises(HilError, match="is not a release number") as err:
        store.get(text)
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


@pytest.mark.parametrize(
    ("version", "device_type", "why"),
    [
        ("", "qemux86-64", "release version '' is not usable"),
        (" 1.2", "qemux86-64", "is not usable"),
        ("1.2.0", "", "device type '' is not a device type slug"),
        ("1.2.0", "qemu x86", "not a device type slug"),
    ],
)
def test_an_empty_or_malformed_version_or_device_type_is_refused(
    store: SqliteStore, version: str, device_type: str, why: str
) -> None:
    with pytest.raises(HilError, match=why):
        store.create(version, {device_type: IMAGE})
    assert store.releases() == []


def _gate_in_a_process(store: str, release_id: str, results: str, build: int, barrier) -> tuple[str, str]:
    os.environ["BUILD_URL"] = f"https://ci.example/job/gate/{build}/"  # tells the gates apart in `who`
    barrier.wait(timeout=60)
    result = gate_release(SqliteStore(store), release_id, results=[Path(results)], catalog=catalog_of())
    return result.outcome, result.text


GATES = 8


def test_eight_gate_processes_at_once_finalize_once_and_the_others_say_who_did(
    store: SqliteStore, store_url: str, passing: Path
) -> None:
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, spawn.Pool(GATES) as pool:
        for _ in range(2):
            release = store.create("1.2.0", IMAGES)
            barrier = manager.Barrier(GATES)
            jobs = [
                pool.apply_async(_gate_in_a_process, (store_url, release.id, str(passing), build, barrier))
                for build in range(GATES)
            ]
            answers = [job.get(timeout=180) for job in jobs]
            final = store.get(release.id)
            assert final.status == "final" and final.finalized_by
            winners = [text for outcome, text in answers if outcome == FINALIZED]
            assert len(winners) == 1
            told = f"{ALREADY_FINAL} by {final.finalized_by} at {final.finalized_at}"
            assert sorted(outcome for outcome, _ in answers if outcome != FINALIZED) == [told] * (GATES - 1)
            assert all(told in text for outcome, text in answers if outcome != FINALIZED)
            recorded = [e["outcome"] for e in store.evidence(release.id)]
            assert recorded.count(FINALIZED) == 1 and len(recorded) == GATES
