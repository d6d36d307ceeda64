"""The store's schema under Alembic: sqlite files written by hil before Alembic (user_version 0, 1 and 2,
tests/support/fixtures/stores/) migrate in place keeping everything, and a migrated store, on either
backend, is exactly the schema hil's code reads (hil/store/schema.py)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from hil.errors import HilError
from hil.release.sqlite_store import SqliteStore
from hil.runs.store import RunStore
from hil.store import db as store_db
from hil.store.schema import metadata
from tests.support.release_samples import IMAGE

FIXTURES = Path(__file__).resolve().parents[1] / "support" / "fixtures" / "stores"


def copy(name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.sqlite"
    shutil.copyfile(FIXTURES / f"{name}.sqlite", path)
    return path


def versions(path: Path) -> tuple[int, list[str]]:
    with sqlite3.connect(path) as db:
        user_version = db.execute("PRAGMA user_version").fetchone()[0]
        return user_version, [r[0] for r in db.execute("SELECT version_num FROM alembic_version")]


def test_the_head_revision_is_the_schema_version() -> None:
    script = ScriptDirectory(str(Path(store_db.__file__).parent / "migrations"))
    assert script.get_current_head() == str(store_db.SCHEMA_VERSION)
    assert [r.revision for r in script.walk_revisions()] == [
        str(n) for n in range(store_db.SCHEMA_VERSION, 0, -1)
    ]


@pytest.mark.parametrize("name", ["v0", "v1", "v2"])
def test_a_store_written_before_alembic_migrates_in_place_keeping_everything(
    name: str, tmp_path: Path
) -> None:
    path = copy(name, tmp_path)
    with sqlite3.connect(path) as db:
        before = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("releases", "decisions")}
    releases = SqliteStore(path)
    assert versions(path) == (store_db.SCHEMA_VERSION, [str(store_db.SCHEMA_VERSION)])
    kept = releases.releases()
    assert len(kept) == before["releases"]
    assert sum(len(releases.evidence(r.id)) for r in kept) == before["decisions"]
    if name == "v0":
        assert {r.version: r.status for r in kept} == {"1.1.0": "final", "1.2.0": "draft"}
        assert all(r.images == {} for r in kept)  # a store from before images gains the column
    runs = RunStore(path)
    if name == "v2":
        assert [r.run_id for r in runs.runs()] == ["r2", "r1"]
        assert runs.get("r2").failed == 1 and runs.junit("r1").data.startswith(b"<?xml")
        assert [r.run_id for r in runs.running()] == ["r3"]
        assert any(r.status == "final" for r in kept)
    else:
        assert runs.count() == 0
    # And the migrated store works: a new draft, finalized by the one conditional update.
    draft = releases.create("9.9.9", {"qemux86-64": IMAGE})
    assert draft.finalized_by is None
    assert SqliteStore(path).get(draft.id) == draft  # opening again migrates nothing


def test_a_new_store_has_exactly_the_schema_the_code_reads(store_url: str) -> None:
    store = SqliteStore(store_url).db
    with store.transaction(read_only=True) as db:
        assert compare_metadata(MigrationContext.configure(db), metadata) == []


@pytest.mark.parametrize("name", ["v0", "v1", "v2"])
def test_a_migrated_sqlite_file_has_every_table_column_and_index_the_code_reads(
    name: str, tmp_path: Path
) -> None:
    store = SqliteStore(copy(name, tmp_path)).db
    with store.transaction(read_only=True) as db:
        diff = compare_metadata(MigrationContext.configure(db), metadata)
    # Tables hil wrote by hand before Alembic differ only as sqlite reads them: REAL for a float, and a
    # primary key it calls nullable. Nothing is missing or extra.
    changes = [d for d in diff if isinstance(d, tuple)]
    assert changes == []
    assert {d[0][0] for d in diff} <= {"modify_type", "modify_nullable"}


def test_a_store_at_an_unknown_revision_is_refused_saying_so(store_url: str) -> None:
    store = SqliteStore(store_url)
    with store.db.transaction() as db:
        db.execute(text("UPDATE alembic_version SET version_num = '7'"))
    with pytest.raises(
        HilError, match=rf"has schema version 7; this hil knows up to {store_db.SCHEMA_VERSION}"
    ):
        SqliteStore(store_url)


def test_an_older_hil_refuses_a_migrated_sqlite_file(tmp_path: Path) -> None:
    """hil before Alembic refused a user_version above 2: a migrated file says SCHEMA_VERSION."""
    path = copy("v2", tmp_path)
    RunStore(path)
    assert versions(path)[0] > 2
