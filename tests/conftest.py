"""What hil's own tests share: the gated lab the run and dashboard tests read."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_runs import GatedLab, gated_lab


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
