"""What hil's own tests share: the gated lab the run and dashboard tests read, and the order files run in."""

from __future__ import annotations

import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.e2e import remove_boards_roots
from tests.support.fake_runs import GatedLab, gated_lab
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.schedule import LongestFileFirst, file_seconds, measured


@pytest.fixture(scope="module")
def lab() -> Iterator[GatedLab]:
    """Two recorded runs of one image and a release gated on them (tests/support/fake_runs.py), per module."""
    # Not tmp_path_factory: the fake console is a Unix socket under the lab, and its path must stay short.
    with tempfile.TemporaryDirectory(prefix="hil-lab-") as root:
        yield gated_lab(Path(root))


@pytest.fixture(scope="module")
def url(lab: GatedLab) -> Iterator[str]:
    """The base URL of the dashboard serving the lab's store."""
    from tests.support.dashboard_server import serving  # uvicorn and the web app: only for tests that serve

    with serving(lab.lab.store) as base:
        yield base


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for this pytest process (tests/support/postgres.py)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store, once as a sqlite file and once as a PostgreSQL database of its own: the store
    tests are one suite run against both backends."""
    if request.param == "sqlite":
        yield str(tmp_path / "releases.sqlite")
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


def pytest_configure() -> None:
    """Ctrl-C live again where the run was started in the background of a shell without job control
    (`scripts/test &` in a script, or under nohup): such a process starts with SIGINT ignored, and so would
    every pytest and QEMU the tests start, while the tests of Ctrl-C need it delivered."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (tests/durations.json), for the scheduler below; order within a file stays."""
    seconds = file_seconds(items, measured())
    items.sort(key=lambda item: -seconds[item.nodeid.split("::", 1)[0]])


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> LongestFileFirst | None:
    """Under `--dist loadfile`: whole files, each to the worker free first (tests/support/schedule.py)."""
    return LongestFileFirst(config, log) if config.getvalue("dist") == "loadfile" else None


def pytest_sessionfinish() -> None:
    """No empty board-directory roots left in the temp folder (tests/support/e2e.py)."""
    remove_boards_roots()
