"""hil's pytest plugin: --rig and --image, the rig and dut fixtures, and what goes into JUnit and Allure.

Thin on purpose: the DUT state machine lives in hil.dut, image choice in hil.provision.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hil.boards import preflight
from hil.console_text import TextCleaner
from hil.dut import Dut
from hil.errors import HilError
from hil.pool import lease_rig, rig_for
from hil.provision import open_dut, resolve_image
from hil.pytest_xdist import ControllerRelay, from_controller, suite_property_recorder, worker_id
from hil.rig import Rig

log = logging.getLogger("hil.plugin")
DEFAULT_RIG = "qemu-x86_64"


class _HilRun:
    """Per-session state, kept in the config stash."""

    def __init__(self, config: pytest.Config) -> None:
        inherited = from_controller(config)  # xdist workers share the controller's run
        self.run_id = inherited.get("run_id") or uuid.uuid4().hex[:12]
        self.started = inherited.get("started") or datetime.now(UTC).isoformat(timespec="seconds")
        option = inherited.get("artifacts") or config.getoption("hil_artifacts")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.artifacts = (
            Path(option) if option else Path.cwd() / "artifacts" / f"run-{stamp}-{self.run_id[:4]}"
        )
        self.rig_arg: str = config.getoption("rig") or DEFAULT_RIG
        self.pool_wait: float = config.getoption("pool_wait")
        image = config.getoption("image")
        self.image_arg: Path | None = Path(image) if image else None
        self.rig: Rig | None = None
        self.dut: Dut | None = None


_RUN = pytest.StashKey[_HilRun]()
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options: which rig, which image, where the logs go."""
    group = parser.getgroup("hil", "hil: hardware-in-the-loop")
    group.addoption(
        "--rig",
        metavar="NAME|PATH",
        help="rig to run on, leased for the session: a name from rigs/, a rig YAML file, NAME#INSTANCE "
        f"of a virtual rig, or pool:NAME for a pool's first free healthy rig (default: {DEFAULT_RIG})",
    )
    group.addoption("--pool-wait", type=float, default=600.0, metavar="SECONDS",
                    help="how long to wait for a leased rig to become free (default: 600)")  # fmt: skip
    group.addoption(
        "--image",
        metavar="PATH",
        help="OS image to flash (.img, .img.gz, .img.xz, .zip); on virtual rigs the default is "
        "hil's reference image, built if not cached",
    )
    group.addoption("--hil-artifacts", metavar="DIR",
                    help="transcripts, QEMU logs, dmesg go here (default ./artifacts/run-TIME)")  # fmt: skip
    group.addoption(
        "--update-bundle",
        metavar="PATH",
        help="host OS update for the hostapp_update suite to install on --image; without it, on virtual "
        "rigs, --image is the target and the reference image one version earlier the base",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register markers, check the options up front, and stop boards cleanly on SIGTERM."""
    config.addinivalue_line("markers", "qemu: boots a QEMU board (slow under TCG)")
    config.addinivalue_line("markers", "slow: takes over a minute")
    config.addinivalue_line(
        "markers", "requires(feature): runs only on rigs that have the feature (e.g. wifi)"
    )
    run = _HilRun(config)
    config.stash[_RUN] = run
    if config.pluginmanager.hasplugin("xdist"):
        relay = {"run_id": run.run_id, "started": run.started, "artifacts": str(run.artifacts)}
        config.pluginmanager.register(ControllerRelay(config, relay), "hil-xdist-relay")
    if config.getoption("rig") or run.image_arg:
        try:
            run.rig = rig_for(run.rig_arg)
            preflight(run.rig)
        except HilError as exc:
            raise pytest.UsageError(
                f"{exc}\n  usage: pytest suites/boot --rig NAME|rigs/NAME.yaml|pool:NAME [--image PATH]"
            ) from None
        if run.image_arg is not None and not run.image_arg.is_file():
            raise pytest.UsageError(f"--image {run.image_arg}: no such file")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # SIGTERM (a cancelled CI job) unwinds like Ctrl-C, so fixtures power boards off and remove disks.
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag every test under suites/<name>/ with its suite, for the release gate."""
    for item in items:
        parts = item.path.parts
        if "suites" in parts[:-1]:
            item.user_properties.append(("hil.suite", parts[parts.index("suites") + 1]))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Keep each phase's report on the item, so fixtures know whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def hil_artifacts(pytestconfig: pytest.Config) -> Path:
    """The run's artifacts directory."""
    path = pytestconfig.stash[_RUN].artifacts
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def rig(pytestconfig: pytest.Config) -> Iterator[Rig]:
    """The rig chosen with --rig, leased for the session (each xdist worker leases its own)."""
    run = pytestconfig.stash[_RUN]
    try:
        run.rig, lease = lease_rig(run.rig_arg, wait=run.pool_wait)
    except HilError as exc:
        pytest.fail(str(exc), pytrace=False)
    with lease:
        yield run.rig


@pytest.fixture(scope="session")
def hil_suite_property(pytestconfig: pytest.Config) -> Callable[[str, object], None]:
    """record_testsuite_property that also reaches the JUnit file from xdist workers (pytest issue 7767)."""
    return suite_property_recorder(pytestconfig)


@pytest.fixture(scope="session")
def dut_image(pytestconfig: pytest.Config, rig: Rig) -> Path:
    """The image under test: --image, or on virtual rigs the reference image."""
    try:
        return resolve_image(rig, pytestconfig.stash[_RUN].image_arg)
    except HilError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def update_bundle(pytestconfig: pytest.Config) -> Path | None:
    """The update bundle given with --update-bundle, or None."""
    option = pytestconfig.getoption("update_bundle")
    if option is None:
        return None
    if not Path(option).is_file():
        pytest.fail(f"--update-bundle {option}: no such file", pytrace=False)
    return Path(option)


@pytest.fixture(scope="session")
def _hil_dut(
    pytestconfig: pytest.Config, rig: Rig, dut_image: Path, hil_artifacts: Path,
    hil_suite_property: Any,
) -> Iterator[Dut]:  # fmt: skip
    """One DUT for the session, flashed once; closed (powered off, disks removed) even on Ctrl-C."""
    run = pytestconfig.stash[_RUN]
    for name, value in (
        ("hil.rig", rig.name),
        ("hil.device_type", rig.device_type),
        ("hil.image", dut_image),
        ("hil.run_id", run.run_id),
        ("hil.started", run.started),
    ):
        hil_suite_property(name, str(value))
    worker = worker_id()
    dut = open_dut(rig, hil_artifacts / (f"{rig.name}-{worker}" if worker else rig.name))
    run.dut = dut
    try:
        dut.flash(dut_image)
        yield dut
    finally:
        dut.close()


@pytest.fixture
def dut(_hil_dut: Dut, hil_suite_property: Any) -> Dut:
    """The DUT, booted to a console login and SSH (a no-op when it already is)."""
    return _boot(_hil_dut, hil_suite_property)


@pytest.fixture
def fresh_dut(_hil_dut: Dut, dut_image: Path, hil_suite_property: Any) -> Dut:
    """The DUT reflashed with the image under test and booted: for tests that change the device."""
    try:
        _hil_dut.flash(dut_image)
    except HilError as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}", pytrace=False)
    return _boot(_hil_dut, hil_suite_property)


def _boot(dut: Dut, hil_suite_property: Any) -> Dut:
    try:
        dut.boot()
    except HilError as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}", pytrace=False)
    if dut.os_version:
        hil_suite_property("hil.os_version", dut.os_version)
    return dut


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Attach the console output of this test's body to its Allure result (innermost, so it lands there)."""
    dut = item.config.stash[_RUN].dut if "_hil_dut" in getattr(item, "fixturenames", ()) else None
    start = dut.transcript.stat().st_size if dut is not None and dut.transcript.exists() else 0
    try:
        return (yield)
    finally:
        if dut is not None:
            _attach(f"console ({item.name})", _clean(dut.transcript, start))


@pytest.fixture(autouse=True)
def _hil_evidence(request: pytest.FixtureRequest) -> Iterator[None]:
    """On a failure in any phase (a boot that timed out included), save dmesg and the whole transcript."""
    if "_hil_dut" not in request.fixturenames:  # every fixture that hands out the DUT depends on it
        yield
        return
    dut: Dut = request.getfixturevalue("_hil_dut")
    yield
    if any(r.failed for r in request.node.stash.get(_REPORTS, {}).values()):
        _save_failure_evidence(dut, request.node.name)


def _clean(transcript: Path, start: int) -> str:
    if not transcript.exists():
        return ""
    with transcript.open("rb") as f:
        f.seek(start)
        cleaner = TextCleaner()
        return cleaner.feed(f.read()) + cleaner.flush()


def _attach(name: str, text: str) -> None:
    with contextlib.suppress(ImportError):
        import allure

        allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)


def _save_failure_evidence(dut: Dut, test: str) -> None:
    """dmesg from the DUT (when it still answers) and the whole transcript, beside the logs and in Allure."""
    folder = dut.artifacts / re.sub(r"[^\w.-]+", "_", test)
    folder.mkdir(parents=True, exist_ok=True)
    if dut.broken is None:
        try:
            dmesg = (dut.run("dmesg", timeout=30) if dut.state >= 3 else dut.console_run("dmesg", 30)).output
        except HilError as exc:
            dmesg = f"(dmesg unavailable: {exc})"
        (folder / "dmesg.txt").write_text(dmesg)
        _attach("dmesg", dmesg)
    _attach("console (full transcript)", _clean(dut.transcript, 0))
    for log_file in (dut.artifacts / "qemu.stderr.log",):
        if log_file.exists():
            _attach(log_file.name, log_file.read_text(errors="replace"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say up front where the evidence goes."""
    run = config.stash[_RUN]
    return [f"hil: rig {run.rig_arg}, image {run.image_arg or 'default'}, artifacts {run.artifacts}"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write Allure's environment panel (rig, image) when Allure results are being collected."""
    alluredir = session.config.getoption("allure_report_dir", None)
    run = session.config.stash.get(_RUN, None)
    env_file = Path(alluredir or ".") / "environment.properties"
    # Under xdist the controller has no DUT: it must not overwrite what a worker wrote.
    if alluredir and run and Path(alluredir).is_dir() and not (run.dut is None and env_file.exists()):
        lines = [f"rig={run.rig_arg}", f"image={run.image_arg or 'reference'}", f"run_id={run.run_id}",
                 f"started={run.started}", f"finished={time.strftime('%Y-%m-%dT%H:%M:%S')}"]  # fmt: skip
        if run.dut is not None:
            lines += [f"device_type={run.dut.rig.device_type}", f"os_version={run.dut.os_version}"]
        env_file.write_text("\n".join(lines) + "\n")
