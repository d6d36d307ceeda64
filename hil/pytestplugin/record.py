"""Recording runs: when asked (`--hil-record-run`, or `hil_record_runs = true` in the ini file), the session
is marked running in the embedded store as it starts, and recorded there when its JUnit file is written.

Every test that holds the DUT also gets a `hil.console` JUnit property: where its slice of the console
transcript is (`FILE:START-END`, bytes), so the run's page can show what the board printed during it.
Loaded with hil's plugin.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.errors import HilError
from hil.pytestplugin.session import RUN, hil_run
from hil.pytestplugin.xdist import worker_id
from hil.results.junit import CONSOLE_PROPERTY
from hil.results.model import Unreadable
from hil.runs.record import SessionInfo, run_from_junit
from hil.runs.store import RunStore

_STORE = pytest.StashKey[Any]()
_START = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """The option and the ini setting that record the run."""
    group = parser.getgroup("hil")
    group.addoption("--hil-record-run", action="store_true",
                    help="record this run in hil's store ($HIL_RELEASE_STORE, else the cache's), for "
                    "`hil runs`, the gate and `hil serve`")  # fmt: skip
    group.addoption(
        "--hil-store", metavar="PATH", help="record the run in this store file (implies recording)"
    )
    parser.addini("hil_record_runs", "record every run in hil's store (as --hil-record-run)", type="bool")


def _recording(config: pytest.Config) -> bool:
    return bool(
        config.getoption("hil_record_run")
        or config.getoption("hil_store")
        or config.getini("hil_record_runs")
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Open the store up front (a store that cannot take the run is a usage error, not a lost run), and
    make sure the session writes the JUnit file the record is made from."""
    if not _recording(config) or worker_id(config) is not None:
        return

    if config.getini("junit_family") != "xunit1":
        raise pytest.UsageError(
            "recording a run needs JUnit in the xunit1 family (xunit2 drops the per-test properties the gate "
            "reads): -o junit_family=xunit1, or junit_family = xunit1 in the ini file"
        )
    if not config.option.xmlpath:
        config.option.xmlpath = str(hil_run(config).artifacts / "junit.xml")
    try:
        config.stash[_STORE] = RunStore(
            Path(config.getoption("hil_store")) if config.getoption("hil_store") else None
        )
    except HilError as exc:
        raise pytest.UsageError(f"cannot record the run: {exc}") from None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say the run has started, so the dashboard can follow its console while it runs."""
    store = session.config.stash.get(_STORE, None)
    if store is None:
        return
    run = session.config.stash[RUN]
    run.artifacts.mkdir(parents=True, exist_ok=True)
    store.start(run.run_id, run.started, run.rig_arg, run.artifacts)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[Any]:
    """Note where the transcript stood when the test began (its setup may boot the board)."""
    transcript = _transcript(item)
    item.stash[_START] = transcript.stat().st_size if transcript and transcript.exists() else 0
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """After teardown, record the test's slice of the transcript (JUnit takes the teardown report's)."""
    if call.when == "teardown" and (transcript := _transcript(item)) and transcript.exists():
        xml = item.config.option.xmlpath
        shown = os.path.relpath(transcript, Path(xml).resolve().parent) if xml else str(transcript.resolve())
        span = f"{item.stash.get(_START, 0)}-{transcript.stat().st_size}"
        item.user_properties.append((CONSOLE_PROPERTY, f"{shown}:{span}"))
    return (yield)


def _transcript(item: pytest.Item) -> Path | None:
    if "hil_dut" not in getattr(item, "fixturenames", ()):
        return None
    dut = item.config.stash[RUN].dut
    return dut.transcript if dut is not None else None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Record the run from the JUnit file, which the JUnit writer (an earlier hook) has just written."""
    config = session.config
    store = config.stash.get(_STORE, None)
    if store is None:
        return

    run = config.stash[RUN]
    alluredir = config.getoption("allure_report_dir", None)
    info = SessionInfo(
        run_id=run.run_id,
        started=run.started,
        rig=run.rig.name if run.rig else run.rig_arg,
        device_type=run.rig.device_type if run.rig else "",
        artifacts=run.artifacts,
        image=str(run.image_arg or ""),
        allure=str(Path(alluredir).resolve()) if alluredir else "",
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    try:
        recorded, data = run_from_junit(Path(config.option.xmlpath), info)
        store.record(recorded, data)
        line = f"hil: run {run.run_id} recorded in {store.path} (hil runs show {run.run_id})"
    except (HilError, Unreadable) as exc:
        line = f"hil: the run was NOT recorded: {exc}"
    if reporter is not None:
        reporter.write_line(line, red=line.startswith("hil: the run was NOT"))
