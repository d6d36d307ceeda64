"""Recording runs: when asked (`--hil-record-run`, `--hil-store STORE`, or `hil_record_runs = true` in the
ini file), the session is marked running in the store as it starts, and recorded there when its JUnit file
is written, with its CI build tag (`--hil-build-tag`, else Jenkins's $BUILD_TAG).

A lab's store being down must not stop testing, nor lose a run: a store unreachable at the start is said
in one line and the session goes ahead; at the end a dropped connection is tried again for a while
(`hil_store_retry_seconds`, 30 s), and a store still unreachable gets the run kept in its artifacts
directory for `hil runs push` (hil/runs/kept.py). pytest's exit status is the tests' either way.

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
from hil.runs.kept import record_or_keep
from hil.runs.record import SessionInfo, run_from_junit
from hil.runs.store import RunStore
from hil.store.db import RETRY_SECONDS, StoreConnectionError
from hil.store.help import STORE_HELP
from hil.store.url import StoreUrl, store_url

_URL = pytest.StashKey[StoreUrl]()
_STORE = pytest.StashKey[RunStore | None]()  # None: unreachable at the start
_SAID = pytest.StashKey[str]()  # what the session should say as it starts
_START = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """The option and the ini setting that record the run."""
    group = parser.getgroup("hil")
    group.addoption("--hil-record-run", action="store_true",
                    help="record this run in hil's store ($HIL_STORE, else the cache's), for "
                    "`hil runs`, the gate and `hil serve`")  # fmt: skip
    group.addoption("--hil-store", metavar="PATH|URL",
                    help=f"record the run in this store (implies recording): {STORE_HELP}")  # fmt: skip
    group.addoption("--hil-build-tag", metavar="TAG",
                    help="the CI build this run belongs to, recorded with it for `hil release gate "
                    "--build-tag` (default: $BUILD_TAG, which Jenkins sets)")  # fmt: skip
    parser.addini("hil_record_runs", "record every run in hil's store (as --hil-record-run)", type="bool")
    parser.addini(
        "hil_store_retry_seconds",
        f"how long recording tries a dropped store connection again before keeping the run in its "
        f"artifacts (default: {RETRY_SECONDS:g})",
        default="",
    )


def _recording(config: pytest.Config) -> bool:
    return bool(
        config.getoption("hil_record_run")
        or config.getoption("hil_store")
        or config.getini("hil_record_runs")
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Open the store up front (a store misnamed is a usage error, not a lost run; one unreachable is said
    at the start, and the run goes ahead), and make sure the session writes the JUnit file the record is
    made from."""
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
        url = store_url(config.getoption("hil_store"))
        config.stash[_STORE] = _open(config, url)
    except HilError as exc:
        raise pytest.UsageError(f"cannot record the run: {exc}") from None
    config.stash[_URL] = url


def _open(config: pytest.Config, url: StoreUrl) -> RunStore | None:
    """The store, or None when it cannot be reached (a lab's database being down must not stop testing:
    the run goes ahead, and is recorded or kept at its end)."""
    try:
        return RunStore(url)
    except StoreConnectionError as exc:
        config.stash[_SAID] = (
            f"hil: store {url.shown} unreachable ({exc.why}); the run goes ahead, and is recorded at its end "
            f"or kept in {hil_run(config).artifacts} for 'hil runs push'"
        )
        return None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say the run has started, so the dashboard can follow its console while it runs; or say, in one line,
    that the store cannot be reached and the run goes ahead."""
    config = session.config
    if _URL not in config.stash:
        return
    run = config.stash[RUN]
    run.artifacts.mkdir(parents=True, exist_ok=True)
    store = config.stash[_STORE]
    if store is not None:
        try:
            store.start(run.run_id, run.started, run.rig_arg, run.artifacts)
        except HilError as exc:  # the mark is for the dashboard; the run goes ahead without it
            config.stash[_SAID] = f"hil: the run is not shown as running: {exc}"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if _SAID in config.stash and reporter is not None:
        reporter.write_line(config.stash[_SAID], yellow=True)


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
    """Record the run from the JUnit file, which the JUnit writer (an earlier hook) has just written; keep
    it in the artifacts when the store stays unreachable."""
    config = session.config
    if _URL not in config.stash:
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
        build_tag=build_tag(config),
    )
    store = config.stash[_STORE]
    # A store the session reached is tried again while a restart lasts; one it never reached, once.
    retry_for = _retry_seconds(config) if store is not None else 0.0
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    try:
        junit = Path(config.option.xmlpath)
        recorded, data = run_from_junit(junit, info)
        line = record_or_keep(config.stash[_URL], store, recorded, data, junit, retry_for)
    except (HilError, Unreadable) as exc:
        line = f"hil: the run was NOT recorded: {exc}"
    if reporter is not None:
        reporter.write_line(line, red=not line.startswith(f"hil: run {run.run_id} recorded in "))


def build_tag(config: pytest.Config) -> str:
    """The CI build the run belongs to: --hil-build-tag, else $BUILD_TAG (Jenkins), else ""."""
    return (config.getoption("hil_build_tag") or os.environ.get("BUILD_TAG") or "").strip()


def _retry_seconds(config: pytest.Config) -> float:
    given = str(config.getini("hil_store_retry_seconds") or "").strip()
    try:
        return max(float(given), 0.0) if given else RETRY_SECONDS
    except ValueError:
        raise pytest.UsageError(f"hil_store_retry_seconds = {given!r} is not a number of seconds") from None
