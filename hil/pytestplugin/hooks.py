"""hil's pytest plugin: options, markers, requirements, error handling, and what goes into JUnit and Allure.

Thin on purpose: the fixtures a suite uses live in hil.pytestplugin.fixtures (the public suite API) and
hil.pytestplugin.servers (the rig-side servers), both loaded with this plugin wherever hil is installed;
the DUT state machine lives in hil.dut.

- `@pytest.mark.requires("link-control", ...)`: the rig must have these capabilities (hil.capabilities).
- `@pytest.mark.requires_os("ab-update", ...)`: the OS profile must have these features (hil.os.model).
  A test whose rig or OS lacks one is skipped naming it, and the JUnit test case records it
  (`hil.missing_capability`, `hil.missing_feature`) for the release gate. `dut.require(...)` and
  `dut.require_os(...)` inside a test or fixture do the same. A name that is no capability or OS feature,
  in a marker or in a `require_os("...")` call in the suite's modules, is a usage error at collection.
- A HilError from a fixture or a test fails the test with its one-line diagnosis, without a traceback.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import re
import signal
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.console.transcript import read_clean
from hil.drivers.capabilities import NAMES as CAPABILITY_NAMES
from hil.dut import Dut
from hil.dut.boards import preflight, rig_capabilities
from hil.errors import HilError, Unsupported
from hil.os.vocabulary import FEATURES
from hil.pytestplugin.session import DEFAULT_RIG, RUN, HilRun, hil_run
from hil.pytestplugin.xdist import ControllerRelay

pytest_plugins = [
    "hil.pytestplugin.fixtures",
    "hil.pytestplugin.servers",
    "hil.pytestplugin.evidence",
    "hil.pytestplugin.record",
]

log = logging.getLogger("hil.plugin")
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_BOOTS_BEFORE = pytest.StashKey[tuple[int, int]]()


def _skip(error: Unsupported) -> BaseException:
    """pytest's own skip, reported at the test, carrying what was missing for the JUnit properties."""
    skip = pytest.skip.Exception(str(error), allow_module_level=True, _use_item_location=True)
    # An attribute of hil's own on pytest's exception (read back by pytest_runtest_makereport).
    skip.hil_missing = error  # type: ignore[attr-defined]
    return skip


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
    group.addoption("--force-rig", action="store_true",
                    help="use a rig named directly even though its last `hil rig check` failed")  # fmt: skip
    group.addoption(
        "--image",
        metavar="PATH",
        help="OS image to flash (.img, .img.gz, .img.xz, .zip); on virtual rigs the default is "
        "hil's reference image, built if not cached",
    )
    group.addoption(
        "--device-type",
        metavar="SLUG",
        help="the device type of an --image that names none (no device-type.json): hil flashes such an "
        "image only when told what it is for, and records that the type was asserted",
    )
    group.addoption("--hil-artifacts", metavar="DIR",
                    help="transcripts, QEMU logs, dmesg go here (default ./artifacts/run-TIME)")  # fmt: skip
    group.addoption(
        "--update-bundle",
        metavar="PATH",
        help="host OS update for the hostapp_update suite to install on --image; without it, on virtual "
        "rigs, --image is the target and the reference image one version earlier the base",
    )
    group.addoption(
        "--update-bundles",
        metavar="FILE",
        help="YAML naming a bundle file per role (good, never-boots, kernel-panics, health-fails, "
        "other-compatible, other-key, truncated) for the hostapp_update suite; good may stand for "
        "--update-bundle. A role it does not name skips its test, naming the role",
    )
    group.addoption(
        "--bundle-swap",
        action="append",
        default=[],
        metavar="ROLE=OTHER",
        help="install the bundle of role OTHER wherever the hostapp_update suite installs ROLE's (`hil "
        "faults` ships a broken update this way: good=kernel-panics)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register markers, check the options up front, and stop boards cleanly on SIGTERM."""
    config.addinivalue_line("markers", "qemu: boots a QEMU board (slow under TCG)")
    config.addinivalue_line("markers", "slow: takes over a minute")
    config.addinivalue_line(
        "markers",
        "requires(capability, ...): runs only on rigs with these capabilities "
        f"({', '.join(sorted(CAPABILITY_NAMES))})",
    )
    config.addinivalue_line(
        "markers", "requires_os(feature, ...): runs only where the OS profile has these features"
    )
    run = hil_run(config)
    if config.pluginmanager.hasplugin("xdist"):
        relay = {"run_id": run.run_id, "started": run.started, "artifacts": str(run.artifacts)}
        config.pluginmanager.register(ControllerRelay(config, relay), "hil-xdist-relay")
    if config.getoption("rig") or run.image_arg:
        try:
            rig = run.rig_definition()
            preflight(rig)
            if way_in := rig.profile.way_in():
                raise HilError(f"rig {rig.name}: {way_in}")
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
    """Tag every test under suites/<name>/ with its suite, for the release gate; check marker names."""
    for item in items:
        parts = item.path.parts[:-1]
        if "suites" in parts:  # the last one: a venv may live under a folder of that name
            at = len(parts) - 1 - parts[::-1].index("suites")
            if at + 1 < len(parts):
                item.user_properties.append(("hil.suite", parts[at + 1]))
        for name, known, kind in (
            ("requires", CAPABILITY_NAMES, "capability"),
            ("requires_os", FEATURES, "OS feature"),
        ):
            for marker in item.iter_markers(name):
                unknown = [a for a in marker.args if a not in known]
                if unknown:
                    raise pytest.UsageError(
                        f"{item.nodeid}: @pytest.mark.{name}({unknown[0]!r}): unknown {kind}; "
                        f"known: {', '.join(sorted(known))}"
                    )
    _check_require_os_calls(items)


def _check_require_os_calls(items: list[pytest.Item]) -> None:
    """Refuse `dut.require_os("...")` naming no OS feature in the suite's modules, as its marker is."""
    for path in sorted(_suite_modules(items)):
        try:
            tree = ast.parse(path.read_bytes(), str(path))
        except (OSError, SyntaxError, ValueError):
            continue  # pytest reports a module it cannot import; this check has nothing to add
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            if getattr(call.func, "attr", getattr(call.func, "id", "")) != "require_os":
                continue
            for arg in [*call.args, *(k.value for k in call.keywords if k.arg == "feature")]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value not in FEATURES:
                    raise pytest.UsageError(
                        f"{path}:{call.lineno}: require_os({arg.value!r}): unknown OS feature; "
                        f"known: {', '.join(sorted(FEATURES))}"
                    )


def _suite_modules(items: list[pytest.Item]) -> set[Path]:
    """The Python files a run's tests and fixtures come from: every module in a test module's folder
    (its helpers too), and the conftest.py files above it, up to the root directory."""
    folders = {item.path.parent for item in items if item.path.suffix == ".py"}
    files = {path for folder in folders for path in folder.glob("*.py")}
    if items:
        root = items[0].config.rootpath
        ancestors = {parent for folder in folders for parent in folder.parents if parent.is_relative_to(root)}
        files |= {conftest for parent in ancestors if (conftest := parent / "conftest.py").is_file()}
    return files


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip, before any fixture runs, a test whose rig lacks a capability or whose OS lacks a feature."""
    capabilities = [c for m in item.iter_markers("requires") for c in m.args]
    features = [f for m in item.iter_markers("requires_os") for f in m.args]
    if not (capabilities or features):
        return
    try:
        rig = item.config.stash[RUN].rig_definition()
    except HilError as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}", pytrace=False)
    has = rig_capabilities(rig)
    for capability in capabilities:
        if capability not in has:
            offers = ", ".join(sorted(has)) or "none"
            why = f"needs a rig with {capability}; rig {rig.name} ({rig.kind}) has {offers}"
            raise _skip(Unsupported(why, capability=capability))
    for feature in features:
        if reason := rig.profile.lacks(feature):
            raise _skip(Unsupported(reason, feature=feature))


@contextlib.contextmanager
def _diagnosed() -> Iterator[None]:
    """A HilError becomes a failure with its one-line diagnosis; Unsupported becomes a skip naming it."""
    try:
        yield
    except Unsupported as exc:
        raise _skip(exc) from None
    except HilError as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Iterator[Any]:
    """Fixtures fail and skip the way tests do (see `_diagnosed`)."""
    with _diagnosed():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Record what a skip was missing; keep each phase's report on the item for the evidence fixture."""
    missing = getattr(call.excinfo.value, "hil_missing", None) if call.excinfo else None
    if isinstance(missing, Unsupported):
        if missing.feature:
            item.user_properties.append(("hil.missing_feature", missing.feature))
        if missing.capability:
            item.user_properties.append(("hil.missing_capability", missing.capability))
    if call.when == "teardown":
        _record_boot_phases(item)
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[Any]:
    """Note how many boots the DUT had made before the test (its setup may boot it)."""
    dut = item.config.stash[RUN].dut
    item.stash[_BOOTS_BEFORE] = (len(dut.boots), len(dut.restores)) if dut is not None else (0, 0)
    return (yield)


def _record_boot_phases(item: pytest.Item) -> None:
    """The test's boots as JUnit properties: the first's `hil.boot_phase.NAME`, all in `hil.boots`; its
    snapshot restores (seconds each) in `hil.restores`."""
    dut = item.config.stash[RUN].dut
    if dut is None:
        return
    boots_before, restores_before = item.stash.get(_BOOTS_BEFORE, (0, 0))
    boots, restores = dut.boots[boots_before:], dut.restores[restores_before:]
    if boots:
        item.user_properties += [(f"hil.boot_phase.{name}", f"{s:.3f}") for name, s in boots[0].items()]
        item.user_properties.append(("hil.boots", json.dumps(boots)))
    if restores:
        item.user_properties.append(("hil.restores", json.dumps([round(s, 3) for s in restores])))


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Diagnose HilErrors; attach this test's console output to its Allure result (innermost, so it lands)."""
    dut = item.config.stash[RUN].dut if "hil_dut" in getattr(item, "fixturenames", ()) else None
    start = dut.transcript.stat().st_size if dut is not None and dut.transcript.exists() else 0
    try:
        with _diagnosed():
            return (yield)
    finally:
        if dut is not None:
            _attach(f"console ({item.name})", read_clean(dut.transcript, start))


@pytest.fixture(autouse=True)
def _hil_evidence(request: pytest.FixtureRequest) -> Iterator[None]:
    """On a failure in any phase (a boot that timed out included), save dmesg and the whole transcript."""
    if "hil_dut" not in request.fixturenames:  # every fixture that hands out the DUT depends on it
        yield
        return
    dut: Dut = request.getfixturevalue("hil_dut")
    yield
    if any(r.failed for r in request.node.stash.get(_REPORTS, {}).values()):
        _save_failure_evidence(dut, request.node.name)


def _attach(name: str, text: str) -> None:
    with contextlib.suppress(ImportError):
        import allure  # at call time, for start-up speed: only a failing test attaches

        allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)


def _save_failure_evidence(dut: Dut, test: str) -> None:
    """What the DUT logged (dmesg, and the OS profile's boot log, e.g. the systemd journal) while it still
    answers, and the whole transcript: beside the logs and in Allure."""
    folder = dut.artifacts / re.sub(r"[^\w.-]+", "_", test)
    folder.mkdir(parents=True, exist_ok=True)
    if dut.broken is None:
        logs = {"dmesg": "dmesg"}
        if dut.profile.boot.log_command != "dmesg":
            logs["boot-log"] = dut.profile.boot.log_command
        for name, command in logs.items():
            text = _dut_output(dut, command)
            (folder / f"{name}.txt").write_text(text)
            _attach(f"{name} ({command})" if name != "dmesg" else name, text)
    _attach("console (full transcript)", read_clean(dut.transcript))
    for log_file in (dut.artifacts / "qemu.stderr.log",):
        if log_file.exists():
            _attach(log_file.name, log_file.read_text(errors="replace"))


def _dut_output(dut: Dut, command: str, timeout: float = 30) -> str:
    """A command's output from the DUT, over SSH when it is up, else on the console; why not, if not."""
    try:
        return (
            dut.run(command, timeout=timeout) if dut.state >= 3 else dut.shell_run(command, timeout)
        ).output
    except HilError as exc:
        return f"({command} unavailable: {exc})"


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say up front where the evidence goes."""
    run = config.stash[RUN]
    return [f"hil: rig {run.rig_arg}, image {run.image_arg or 'default'}, artifacts {run.artifacts}"]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write Allure's environment panel (rig, image) when Allure results are being collected."""
    alluredir = session.config.getoption("allure_report_dir", None)
    run: HilRun | None = session.config.stash.get(RUN, None)
    env_file = Path(alluredir or ".") / "environment.properties"
    # Under xdist the controller has no DUT: it must not overwrite what a worker wrote.
    if alluredir and run and Path(alluredir).is_dir() and not (run.dut is None and env_file.exists()):
        lines = [f"rig={run.rig_arg}", f"image={run.image_arg or 'reference'}", f"run_id={run.run_id}",
                 f"started={run.started}", f"finished={time.strftime('%Y-%m-%dT%H:%M:%S')}"]  # fmt: skip
        if run.dut is not None:
            lines += [f"device_type={run.dut.rig.device_type}", f"os_version={run.dut.os_version}",
                      f"os_profile={run.dut.profile.name}"]  # fmt: skip
        env_file.write_text("\n".join(lines) + "\n")
