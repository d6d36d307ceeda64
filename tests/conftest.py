"""What hil's own tests share: a pytest a test starts is a session of its own even under pytest-xdist, and
the gated lab the run and dashboard tests read."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_runs import GatedLab, gated_lab

# What pytest-xdist sets in a worker's environment (xdist/remote.py), and so in every process it starts.
_XDIST_WORKER_ENV = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


@pytest.fixture(scope="session", autouse=True)
def _child_sessions_are_not_xdist_workers() -> Iterator[None]:
    # A pytest started by a test under -n would inherit these and take itself for a worker: hil's plugin
    # then leaves recording the run and its exit status to a controller that is not there. Session scope:
    # module fixtures (the lab) start pytest sessions too, before any function fixture runs.
    with pytest.MonkeyPatch.context() as env:
        for name in _XDIST_WORKER_ENV:
            env.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def lab() -> Iterator[GatedLab]:
    """Two recorded runs of one image and a release gated on them (tests/fake_runs.py), per module."""
    # Not tmp_path_factory: the fake console is a Unix socket under the lab, and its path must stay short.
    with tempfile.TemporaryDirectory(prefix="hil-lab-") as root:
        yield gated_lab(Path(root))


@pytest.fixture(scope="module")
def url(lab: GatedLab) -> Iterator[str]:
    """The base URL of the dashboard serving the lab's store."""
    from tests.dashboard_server import serving  # uvicorn and the web app: only for tests that serve

    with serving(lab.lab.store) as base:
        yield base
