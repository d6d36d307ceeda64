"""The fixtures a suite uses: the leased rig, the image under test, and the DUT in the state a test needs.

This is hil's public suite API, the same for hil's suites and a user's in another repository:
`rig`, `dut_image`, `hil_artifacts`, `hil_suite_property`, `update_bundle`, `update_bundles`,
`bundle_swaps`, `hil_dut`
(the session's DUT, flashed, not necessarily booted), `dut` (booted: console and SSH), `console_dut`
(booted to a console login, no SSH needed), `fresh_dut` (reflashed and booted) and `reflash_dut`
(a module-scoped factory: flash with extra config.json, or another image, and boot;
the module's end flashes the image under test back). A HilError in any of them fails the test with its
one-line diagnosis; a missing rig
capability or OS feature skips it, naming what is missing (see hil.pytestplugin.hooks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from hil.dut.dut import Dut, State
from hil.dut.provision import open_dut, resolve_image
from hil.errors import HilError
from hil.images.hash import image_sha256
from hil.lab.bundles import Bundles, bundles_beside, load_bundles
from hil.lab.pool import lease_rig
from hil.lab.rig import Rig
from hil.os.vocabulary import BUNDLE_ROLES, BundleRole
from hil.pytestplugin.session import RUN
from hil.pytestplugin.xdist import suite_property_recorder, worker_id


@pytest.fixture(scope="session")
def hil_artifacts(pytestconfig: pytest.Config) -> Path:
    """The run's artifacts directory."""
    path = pytestconfig.stash[RUN].artifacts
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def rig(pytestconfig: pytest.Config) -> Iterator[Rig]:
    """The rig chosen with --rig, leased for the session (each xdist worker leases its own)."""
    run = pytestconfig.stash[RUN]
    run.rig, lease = lease_rig(run.rig_arg, wait=run.pool_wait, force=pytestconfig.getoption("force_rig"))
    with lease:
        yield run.rig


@pytest.fixture(scope="session")
def hil_suite_property(pytestconfig: pytest.Config) -> Callable[[str, object], None]:
    """record_testsuite_property that also reaches the JUnit file from xdist workers (pytest issue 7767)."""
    return suite_property_recorder(pytestconfig)


@pytest.fixture(scope="session")
def dut_image(pytestconfig: pytest.Config, rig: Rig) -> Path:
    """The image under test: --image, or on virtual rigs the reference image."""
    return resolve_image(rig, pytestconfig.stash[RUN].image_arg)


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
def update_bundles(pytestconfig: pytest.Config, dut_image: Path) -> Bundles:
    """The bundles by role: those --update-bundles names, else those the bundles file beside the image
    under test names (`<image>.bundles.yaml`, as hil's builders write it), else none."""
    option = pytestconfig.getoption("update_bundles")
    path = Path(option) if option else bundles_beside(dut_image)
    if path is None:
        return Bundles()
    try:
        return load_bundles(path)
    except HilError as exc:
        pytest.fail(f"update bundles: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def bundle_swaps(pytestconfig: pytest.Config) -> dict[BundleRole, BundleRole]:
    """Role -> the role whose bundle plays it (--bundle-swap); a role outside the closed set is an error."""
    swaps: dict[BundleRole, BundleRole] = {}
    for text in pytestconfig.getoption("bundle_swap"):
        role, _, other = text.partition("=")
        if role not in BUNDLE_ROLES or other not in BUNDLE_ROLES:
            pytest.fail(
                f"--bundle-swap {text}: ROLE=OTHER, each one of {', '.join(BUNDLE_ROLES)}", pytrace=False
            )
        swaps[cast(BundleRole, role)] = cast(BundleRole, other)
    return swaps


@pytest.fixture(scope="session")
def hil_dut(
    pytestconfig: pytest.Config, rig: Rig, dut_image: Path, hil_artifacts: Path,
    hil_suite_property: Callable[[str, object], None],
) -> Iterator[Dut]:  # fmt: skip
    """The session's DUT, flashed once with the image under test; closed (powered off, disks removed)
    even on Ctrl-C."""
    run = pytestconfig.stash[RUN]
    worker = worker_id(pytestconfig)
    dut = open_dut(rig, hil_artifacts / (f"{rig.name}-{worker}" if worker else rig.name))
    run.dut = dut
    try:
        dut.flash(dut_image, device_type=run.device_type)
        for name, value in (
            ("hil.rig", rig.name),
            ("hil.device_type", rig.device_type),
            ("hil.device_type_source", dut.device_type_source),
            ("hil.os_profile", rig.profile.name),
            ("hil.image", dut_image),
            ("hil.image_sha256", image_sha256(dut_image)),  # what the release gate ties the results to
            ("hil.run_id", run.run_id),
            ("hil.started", run.started),
        ):
            hil_suite_property(name, str(value))
        yield dut
    finally:
        dut.close()


def _booted(dut: Dut, target: State | None, hil_suite_property: Callable[[str, object], None]) -> Dut:
    if target is not None:
        dut.transition(target)
    if dut.os_version:
        hil_suite_property("hil.os_version", dut.os_version)
    return dut


@pytest.fixture
def dut(hil_dut: Dut, hil_suite_property: Callable[[str, object], None]) -> Dut:
    """The DUT, booted to its console login and SSH (a no-op when it already is)."""
    return _booted(hil_dut, State.READY, hil_suite_property)


@pytest.fixture
def console_dut(hil_dut: Dut, hil_suite_property: Callable[[str, object], None]) -> Dut:
    """The DUT logged in on its console, SSH or not (skipped where hil has no console login)."""
    hil_dut.require_os("console-login")
    return _booted(hil_dut, State.BOOTED, hil_suite_property)


@pytest.fixture
def fresh_dut(
    pytestconfig: pytest.Config,
    hil_dut: Dut,
    dut_image: Path,
    hil_suite_property: Callable[[str, object], None],
) -> Dut:
    """The DUT reflashed with the image under test and booted: for tests that change the device (on boards
    that keep snapshots, restored to the state its first such boot reached; see Dut.fresh)."""
    hil_dut.fresh(dut_image, device_type=pytestconfig.stash[RUN].device_type)
    return _booted(hil_dut, None, hil_suite_property)


@pytest.fixture(scope="module")
def reflash_dut(pytestconfig: pytest.Config, hil_dut: Dut, dut_image: Path) -> Iterator[Callable[..., Dut]]:
    """Flash and boot the DUT the way a module needs it; the module's end restores the image under test.

    `reflash_dut(config=None, *, image=None, before_boot=None, boot=True)`: `config` is merged into the
    profile's config.json, `image` replaces the image under test, `before_boot(dut)` runs powered off
    (e.g. to start the RTC years back), and `boot=False` leaves the DUT flashed, powered off. Without
    `before_boot`, a board that keeps snapshots restores a DUT it booted this way before (Dut.fresh).
    """
    device_type = pytestconfig.stash[RUN].device_type
    used = False

    def reflash(
        config: dict[str, Any] | None = None,
        *,
        image: Path | None = None,
        before_boot: Callable[[Dut], None] | None = None,
        boot: bool = True,
    ) -> Dut:
        nonlocal used
        used = True
        if boot and before_boot is None:
            return hil_dut.fresh(image or dut_image, config, device_type=device_type)
        hil_dut.flash(image or dut_image, config, device_type=device_type)
        if before_boot is not None:
            before_boot(hil_dut)
        return hil_dut.boot() if boot else hil_dut

    yield reflash
    if used:  # later modules get the DUT as the plugin gave it, not this module's configuration
        hil_dut.flash(dut_image, device_type=device_type)
