"""Which tests each installed suite has, from hil's own collection of it: a run with -k or --deselect,
or one cut short, cannot stand in for the whole suite, whatever its results claim.

The collection runs pytest in a subprocess with nothing from the caller's selection (no PYTEST_ADDOPTS,
no ini addopts) and this module as a plugin. It needs no rig: a test that does not apply to a rig or an
OS is collected and then skipped naming what is missing, never deselected, so every run has the same
tests, and a skip is judged by the policy.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.junitxml import mangle_test_address  # the names pytest's JUnit writer gives a test

from hil.errors import HilError
from hil.results.model import local_test_id

_OUT = "HIL_CATALOG_OUT"


@dataclass(frozen=True)
class Catalog:
    """Suite name -> the ids of its tests (as results.local_test_id spells them), and where they came from."""

    suites: dict[str, frozenset[str]]
    source: str

    @property
    def sha256(self) -> str:
        """A digest of the whole catalog, for the evidence."""
        listed = {suite: sorted(tests) for suite, tests in sorted(self.suites.items())}
        return hashlib.sha256(json.dumps(listed).encode()).hexdigest()

    def evidence(self) -> dict:
        """What the gate recorded about the suites it held the results against."""
        return {
            "source": self.source,
            "sha256": self.sha256,
            "tests": {s: len(t) for s, t in self.suites.items()},
        }


def collect(suite_dirs: list[Path], timeout: float = 300) -> Catalog:
    """Collect `suite_dirs` the way a run would, and list each suite's tests."""
    if not suite_dirs:
        raise HilError("no suites to collect: the gate cannot tell which tests a complete run has")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    with tempfile.TemporaryDirectory(prefix="hil-catalog-") as tmp:
        out = Path(tmp) / "catalog.json"
        env[_OUT] = str(out)
        command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-o", "addopts=",
                   "-p", "no:cacheprovider", "-p", __name__, *map(str, suite_dirs)]  # fmt: skip
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HilError(f"collecting the suites {_names(suite_dirs)} took over {timeout:.0f} s") from None
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        if done.returncode != 0 or not out.is_file():
            raise HilError(
                f"cannot collect the suites {_names(suite_dirs)} (pytest exit {done.returncode}): {tail}"
            )
        found = json.loads(out.read_text())
    if found["skipped"]:
        raise HilError(
            f"suite module {found['skipped'][0]} skips itself at collection; its tests cannot be known"
        )
    suites = {suite: frozenset(tests) for suite, tests in found["suites"].items() if suite}
    if not suites:
        raise HilError(f"the suites {_names(suite_dirs)} hold no tests")
    return Catalog(suites=suites, source=", ".join(map(str, suite_dirs)))


def _names(dirs: list[Path]) -> str:
    return ", ".join(d.name for d in dirs)


# The plugin half, loaded into the collecting pytest with `-p hil.release.catalog`.


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """Note modules that skip themselves: the catalog must not quietly lose their tests."""
    if report.skipped and _OUT in os.environ:
        _skipped.append(report.nodeid)


_skipped: list[str] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    """Write each suite's tests (the suite is the hil.suite property the hil plugin gives every test)."""
    out = os.environ.get(_OUT)
    if not out:
        return
    suites: dict[str, list[str]] = {}
    for item in session.items:
        suite = dict(item.user_properties).get("hil.suite", "")
        *classes, name = mangle_test_address(item.nodeid)
        suites.setdefault(str(suite), []).append(local_test_id(str(suite), ".".join(classes), name))
    Path(out).write_text(json.dumps({"suites": suites, "skipped": _skipped}))
