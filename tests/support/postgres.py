"""A throwaway PostgreSQL server for the store tests, from Debian's postgresql package (scripts/setup).

One server per pytest process (so per xdist worker), started on first use: a cluster in a directory made
with mkdtemp, listening on a Unix socket in that directory only (no TCP), trusting its local users, with
fsync off (nothing here must survive a crash), stopped and removed at the end. initdb refuses to run as
root, so as root the directory is handed to the `postgres` user and the server runs as it (runuser);
Debian keeps the binaries in /usr/lib/postgresql/<version>/bin, off PATH. Each test gets a database of
its own, dropped after it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

SUPERUSER = "hil"


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory; a clear error naming the fix when none is."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError(
            "no PostgreSQL server: the store tests need Debian's postgresql (run scripts/setup)"
        )
    return found[-1].parent


class PostgresServer:
    """A running throwaway server: its socket directory, and databases made on it; it can be stopped,
    started and restarted in place (same data, same socket), as a lab's server is by its admin."""

    def __init__(self, root: Path, ctl: list[str] | None = None, options: str = "") -> None:
        self.root = root
        self._names = itertools.count(1)
        self._ctl = ctl or []  # pg_ctl with its data directory and log, as the server's user
        self._options = options

    def _pg_ctl(self, *argv: str) -> None:
        subprocess.run([*self._ctl, *argv], check=True, capture_output=True, text=True, timeout=120)

    def restart(self) -> None:
        """pg_ctl restart (fast: every connection is ended), waiting until it accepts connections again."""
        self._pg_ctl("-m", "fast", "-o", self._options, "-w", "-t", "60", "restart")

    def stop(self) -> None:
        """Stop the server (fast: every connection is ended); start() brings it back."""
        self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop")

    def start(self) -> None:
        """Start the stopped server again, waiting until it accepts connections."""
        self._pg_ctl("-o", self._options, "-w", "-t", "60", "start")

    def admin(self) -> psycopg.Connection:
        """A superuser connection to the server's `postgres` database (autocommit), for what a test does
        behind the store's back."""
        return self._admin()

    def url(self, database: str = "postgres") -> str:
        """A store URL for `database` on this server (over its Unix socket)."""
        return f"postgresql://{SUPERUSER}@/{database}?host={self.root}"

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(host=str(self.root), user=SUPERUSER, dbname="postgres", autocommit=True)

    def create_database(self) -> str:
        """A new empty database; its name."""
        name = f"store_{os.getpid()}_{next(self._names)}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop it, closing whatever connections the test's engines still pool."""
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway server; stop it and remove its directory at the end."""
    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="hil-pg-"))  # short: a socket path has at most 107 bytes
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"

    def run(*argv: str) -> None:
        subprocess.run([*as_user, *argv], check=True, capture_output=True, text=True, timeout=120)

    try:
        run(
            str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync"
        )
        options = (
            f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c max_connections=60"
        )
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    except subprocess.CalledProcessError as exc:
        shown = log.read_text() if log.is_file() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}{exc.stdout}{shown}") from None
    try:
        yield PostgresServer(
            root, [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log)], options
        )
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60, check=False)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
