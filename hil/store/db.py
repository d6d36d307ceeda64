"""The embedded store's sqlite file: opening it, its schema version and the migrations that reach it.

One file holds releases and their gate decisions, and the runs the pytest plugin records, whichever store
the releases live in. `PRAGMA user_version` is the schema version. Opening a store migrates it, in one
transaction, from any version this hil knows; a newer or foreign file is refused, saying why.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from hil.errors import HilError
from hil.util.paths import cache_dir

# Version 1: releases (with the images they ship) and decisions. Version 2: runs and their tests.
# Stores written before versions were numbered say 0; their releases may lack the images column.
SCHEMA_VERSION = 2

_RELEASES = """
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    device_types TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'final', 'invalidated')),
    created TEXT NOT NULL,
    finalized_at TEXT,
    images TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    release_id INTEGER NOT NULL REFERENCES releases(id),
    decided_at TEXT NOT NULL,
    who TEXT NOT NULL,
    verdict TEXT NOT NULL,
    outcome TEXT NOT NULL,
    policy_sha256 TEXT NOT NULL,
    evidence TEXT NOT NULL
)
"""

# A run is one pytest session; its JUnit file is kept whole (zlib) with its sha256, so a gate reading the
# run later reads exactly what a gate reading the file would have. tests and test_stats are for looking.
_RUNS = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    rig TEXT NOT NULL,
    device_type TEXT NOT NULL,
    image TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    os_version TEXT NOT NULL,
    os_profile TEXT NOT NULL,
    exitstatus INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    seconds REAL NOT NULL,
    boot_seconds REAL,
    facts TEXT NOT NULL,
    junit_path TEXT NOT NULL,
    junit BLOB NOT NULL,
    junit_sha256 TEXT NOT NULL
);
CREATE INDEX runs_by_device_type ON runs (device_type, id);
CREATE INDEX runs_by_rig ON runs (rig, id);
CREATE TABLE tests (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs(id),
    suite TEXT NOT NULL,
    test TEXT NOT NULL,
    name TEXT NOT NULL,
    outcome TEXT NOT NULL,
    seconds REAL NOT NULL,
    message TEXT NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX tests_by_run ON tests (run);
CREATE INDEX tests_by_name ON tests (suite, test, run);
CREATE TABLE test_stats (
    device_type TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    suite TEXT NOT NULL,
    test TEXT NOT NULL,
    passed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    last_run INTEGER NOT NULL,
    PRIMARY KEY (device_type, image_sha256, suite, test)
);
CREATE INDEX test_stats_flaky ON test_stats (failed, passed);
CREATE TABLE running (
    run_id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    rig TEXT NOT NULL,
    artifacts TEXT NOT NULL
)
"""


def default_store_path() -> Path:
    """$HIL_RELEASE_STORE, else releases.sqlite in hil's cache directory."""
    env = os.environ.get("HIL_RELEASE_STORE")
    return Path(env) if env else cache_dir() / "releases.sqlite"


class Database:
    """The store file, migrated to SCHEMA_VERSION when opened; every write is one immediate transaction."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path or default_store_path())
        # A mistyped --store must not quietly start an empty store somewhere new.
        if not self.path.parent.is_dir():
            raise HilError(f"release store {self.path}: folder {self.path.parent} does not exist")
        if self.path.exists() and not self.path.is_file():
            raise HilError(f"release store {self.path} is not a file")
        with self.transaction() as db:
            _migrate(self.path, db)

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock first: a second writer waits, then sees the first's commit.
        A read-only transaction cannot write (query_only) and does not hold up writers."""
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise HilError(f"release store {self.path}: cannot open ({exc})") from None
        with closing(conn):
            try:
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA foreign_keys = ON")
                if read_only:
                    conn.execute("PRAGMA query_only = ON")
                conn.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise HilError(f"release store {self.path} is not a usable release store ({exc})") from None
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise HilError(f"release store {self.path}: {exc}") from None
            except BaseException:
                _rollback(conn)
                raise


def _migrate(path: Path, db: sqlite3.Connection) -> None:
    """Bring the schema from the version the file says up to SCHEMA_VERSION, or refuse saying why."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version > SCHEMA_VERSION:
        raise HilError(
            f"release store {path} has schema version {version}; this hil knows up to {SCHEMA_VERSION}: "
            "use the newer hil that wrote it, or another --store"
        )
    if tables and "releases" not in tables:
        raise HilError(f"release store {path} is a sqlite database of something else")
    if version < 1:
        _executescript(db, _RELEASES)
        columns = {row[1] for row in db.execute("PRAGMA table_info(releases)")}
        if "images" not in columns:  # a store from before releases named their images
            db.execute("ALTER TABLE releases ADD COLUMN images TEXT NOT NULL DEFAULT '{}'")
    if version < 2:
        _executescript(db, _RUNS)
    if version != SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _executescript(db: sqlite3.Connection, script: str) -> None:
    # Statement by statement: executescript() would COMMIT the transaction the migration runs in.
    for statement in script.split(";"):
        db.execute(statement)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")
