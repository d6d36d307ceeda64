"""The store's database: opening it (a sqlite file or a PostgreSQL), its transactions, and migrating its
schema with Alembic.

One database holds releases and their gate decisions, and the runs the pytest plugin records, whichever
store the releases live in. Opening a store migrates it, in one transaction, from any version this hil
knows (Alembic's revision "N" is schema version N); a newer or foreign database is refused, saying why.
sqlite files from before Alembic say their version in `PRAGMA user_version` (0, 1 or 2): they are stamped
with that revision and upgraded in place. A migrated sqlite file keeps `user_version` at SCHEMA_VERSION,
so an older hil refuses it rather than misread it.

Every write transaction on sqlite is `BEGIN IMMEDIATE` (SQLAlchemy's pysqlite driver would emit a
deferred BEGIN, or none): it takes the write lock first, so a second writer waits, then sees the first's
commit. On PostgreSQL a transaction is READ COMMITTED; what must happen once (finalizing) is one
conditional UPDATE, which a concurrent transaction waits on and then re-checks.

A failure of the connection itself (refused, dropped, the server restarting: a driver OperationalError,
or any error that invalidated the connection) is a StoreConnectionError, apart from the store refusing
what was asked: a caller may retry it (`with_retries`), or keep what it meant to write. A PostgreSQL pool
pings a connection before handing it out, so a restarted server costs a reconnect, not a failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from hil.errors import HilError
from hil.store.url import StoreUrl, default_sqlite_path, store_url

# Alembic's head revision as a number; tests check that the two agree.
SCHEMA_VERSION = 4
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Serializes migrations (and any write that reads first) of one PostgreSQL database across processes.
_PG_LOCK_MIGRATE = 0x68696C00  # "hil\0"
_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()
# How long a write that must not be lost retries a failing connection, by default (a server restart).
RETRY_SECONDS = 30.0
_log = logging.getLogger(__name__)
_T = TypeVar("_T")


class StoreConnectionError(HilError):
    """The store could not be reached, or the connection dropped: worth retrying. `where` is the store as
    shown (masked), `why` the driver's words; `committing` says the drop came at COMMIT, when the server may
    have committed without saying so."""

    def __init__(self, message: str, where: str, why: str, committing: bool = False) -> None:
        super().__init__(message)
        self.where, self.why, self.committing = where, why, committing


def default_store_path() -> Path:
    """The sqlite file the default store names ($HIL_STORE, $HIL_RELEASE_STORE, else the cache's); the
    cache's file when the default store is a PostgreSQL."""
    return store_url().path or default_sqlite_path()


class Database:
    """The store, migrated to SCHEMA_VERSION when opened; every write is one transaction."""

    def __init__(self, store: str | Path | StoreUrl | None = None) -> None:
        self.url: StoreUrl = store if isinstance(store, StoreUrl) else store_url(store)
        # The sqlite file, None on PostgreSQL; `where` is what messages show (a URL's password masked).
        self.path: Path | None = self.url.path
        self.where = self.url.shown
        if self.path is not None:
            # A mistyped --store must not quietly start an empty store somewhere new.
            if not self.path.parent.is_dir():
                raise HilError(f"release store {self.path}: folder {self.path.parent} does not exist")
            if self.path.exists() and not self.path.is_file():
                raise HilError(f"release store {self.path} is not a file")
        self.engine = _engine(self.url)
        with self.transaction() as db:
            _migrate(self, db)

    @property
    def is_sqlite(self) -> bool:
        return self.url.is_sqlite

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[Connection]:
        """One transaction, committed when the block ends, rolled back when it raises. sqlite: BEGIN
        IMMEDIATE takes the write lock first. A read-only transaction cannot write (sqlite's query_only,
        PostgreSQL's READ ONLY) and does not hold up writers. A database error is a one-line HilError; a
        failed connection a StoreConnectionError."""
        try:
            conn = self.engine.connect()
        except DBAPIError as exc:
            raise self._unusable(exc) from None
        with conn:
            conn.execution_options(hil_read_only=read_only)
            try:
                trans = conn.begin()
            except DBAPIError as exc:
                raise self._unusable(exc) from None
            committing = False
            try:
                yield conn
                committing = True
                trans.commit()
            except DBAPIError as exc:
                _rollback(conn)
                if connection_failed(exc):
                    message = f"store {self.where}: the connection dropped ({why(exc)})"
                    raise StoreConnectionError(message, self.where, why(exc), committing) from None
                raise HilError(f"release store {self.where}: {why(exc)}") from None
            except BaseException:
                _rollback(conn)
                raise

    def _unusable(self, exc: DBAPIError) -> HilError:
        """The error for a store that could not be connected to, or began no transaction."""
        message = f"release store {self.where} is not a usable release store ({why(exc)})"
        return (
            StoreConnectionError(message, self.where, why(exc))
            if connection_failed(exc)
            else HilError(message)
        )

    def serialize(self, db: Connection, key: int) -> None:
        """Make this write transaction the only one holding `key` until it ends: a PostgreSQL advisory
        lock; on sqlite BEGIN IMMEDIATE already serializes every write."""
        if not self.is_sqlite:
            db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def why(exc: SQLAlchemyError) -> str:
    """The driver's own words, on one line (no SQL, no parameters, no URL)."""
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split()) or type(orig).__name__


def connection_failed(exc: DBAPIError) -> bool:
    """Whether a database error is the connection's (refused, dropped, a server restarting or shutting
    down), not the store refusing the statement: the driver's OperationalError, or an invalidated
    connection."""
    return isinstance(exc, OperationalError) or bool(exc.connection_invalidated)


def with_retries(attempt: Callable[[int], _T], seconds: float = RETRY_SECONDS) -> _T:
    """attempt(n) for n = 0, 1, ... until it does not fail with a StoreConnectionError, waiting 0.5 s,
    1 s, 2 s ... (at most 8 s) between tries, for at most `seconds` of waiting; then the last error."""
    deadline = time.monotonic() + seconds
    delay, n = 0.5, 0
    while True:
        try:
            return attempt(n)
        except StoreConnectionError as exc:
            if time.monotonic() + delay > deadline:
                raise
            _log.info("%s; trying again in %.1f s", exc, delay)
            time.sleep(delay)
            delay, n = min(delay * 2, 8.0), n + 1


def _rollback(conn: Connection) -> None:
    # A connection that dropped cannot roll back; the server ends its transaction without committing.
    with suppress(SQLAlchemyError):
        conn.rollback()


def _engine(url: StoreUrl) -> Engine:
    """One engine per store per process: sqlite opens the file per transaction (as sqlite3 did); a
    PostgreSQL keeps a small pool whose connections are pinged before use (pool_pre_ping): one a server
    restart killed is replaced, never handed out."""
    key = url.url.render_as_string(hide_password=False)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            if url.is_sqlite:
                engine = create_engine(url.url, poolclass=NullPool, connect_args={"timeout": 30})
                event.listen(engine, "connect", _sqlite_connect)
                event.listen(engine, "begin", _sqlite_begin)
            else:
                engine = create_engine(
                    url.url, pool_size=2, pool_pre_ping=True, hide_parameters=True,
                    connect_args={"connect_timeout": 10, "application_name": "hil"},
                )  # fmt: skip
                event.listen(engine, "begin", _postgresql_begin)
            _ENGINES[key] = engine
    return engine


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # SQLAlchemy's documented recipe: the driver emits no BEGIN of its own; the begin event does.
    dbapi_conn.isolation_level = None
    dbapi_conn.execute("PRAGMA foreign_keys = ON")


def _sqlite_begin(conn: Connection) -> None:
    read_only = bool(conn.get_execution_options().get("hil_read_only"))
    conn.exec_driver_sql(f"PRAGMA query_only = {int(read_only)}")
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _postgresql_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("hil_read_only"):
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")


def _migrate(db: Database, conn: Connection) -> None:
    """Bring the schema up to SCHEMA_VERSION with Alembic, or refuse saying why."""
    current, user_version, tables = _version(db, conn)
    if current == str(SCHEMA_VERSION) and user_version in (None, SCHEMA_VERSION):
        return
    if not db.is_sqlite:
        db.serialize(conn, _PG_LOCK_MIGRATE)
        current, user_version, tables = _version(db, conn)  # another process may have migrated meanwhile
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    cfg.attributes["connection"] = conn
    if current is None and "releases" in tables and user_version in (1, 2):
        command.stamp(cfg, str(user_version))  # a sqlite file from before Alembic, at that version
    if current != str(SCHEMA_VERSION):
        command.upgrade(cfg, "head")
    if db.is_sqlite:
        conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _version(db: Database, conn: Connection) -> tuple[str | None, int | None, set[str]]:
    """Alembic's revision (None before Alembic), sqlite's user_version, and the tables; refuses a newer
    or foreign database."""
    tables = set(inspect(conn).get_table_names())
    user_version = conn.exec_driver_sql("PRAGMA user_version").scalar() if db.is_sqlite else None
    current = None
    if "alembic_version" in tables:
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    newer = user_version if user_version and user_version > SCHEMA_VERSION else None
    if current is not None and current not in _revisions():
        newer = current
    if newer is not None:
        raise HilError(
            f"release store {db.where} has schema version {newer}; this hil knows up to {SCHEMA_VERSION}: "
            "use the newer hil that wrote it, or another --store"
        )
    if tables and "releases" not in tables:
        kind = "a sqlite database" if db.is_sqlite else "a database"
        raise HilError(f"release store {db.where} is {kind} of something else")
    return current, user_version, tables


_REVISIONS: set[str] = set()


def _revisions() -> set[str]:
    """Every revision the migrations know."""
    if not _REVISIONS:
        _REVISIONS.update(r.revision for r in _script().walk_revisions())
    return _REVISIONS


def _script() -> ScriptDirectory:
    return ScriptDirectory(str(_MIGRATIONS))
