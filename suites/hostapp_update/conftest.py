"""What the hostapp_update suite updates from and to, and the known state each of its tests starts in.

Base and target, as meta-balena's HUP suite chooses them:
- bundles by role (`--update-bundles FILE`, or the bundles file beside the image, as hil's RAUC image
  builder writes it), or `--update-bundle BUNDLE`: the image under test (`--image`) is the base and the
  good bundle the target;
- neither, on virtual rigs: the image under test is the target (its update bundle lies beside it, as
  the reference image builder writes it) and the base is the reference image one version earlier,
  built here. "One version earlier" lowers the last non-zero number (1.0.0 -> 0.0.0, 1.2.3 -> 1.2.2):
  always an older release, built from today's packages, so only the update path differs.
The other roles (bundles that must roll back or be refused) come from the bundles file; hil makes the
ones it can (see `bundle`), and a role with none skips its test, naming the role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from hil.dut import Dut
from hil.dut.provision import image_version
from hil.errors import ImageError
from hil.images.arch import for_device_type, of_device_type
from hil.images.builders.reference import build_reference
from hil.images.bundles import BundleInfo, read_bundle
from hil.images.hash import image_sha256
from hil.images.hil_bundle import make_foreign_bundle, truncate_bundle
from hil.lab.bundles import Bundles, bundle_beside
from hil.lab.rig import VIRTUAL_KINDS, Rig
from hil.os.vocabulary import BundleRole


@dataclass(frozen=True)
class UpdatePlan:
    """The image flashed before each test and the bundle that updates it."""

    base: Path
    bundle: Path
    base_version: str | None
    target_version: str | None
    info: BundleInfo | None  # what the good bundle says of itself, when hil reads its format


def previous_version(version: str) -> str:
    """The version one release earlier: the last non-zero number lowered by one."""
    numbers = version.split(".")
    if not all(n.isdigit() for n in numbers) or not any(int(n) for n in numbers):
        raise ImageError(f"no earlier version than {version!r} to update from; pass --update-bundle")
    last = max(i for i, n in enumerate(numbers) if int(n))
    numbers[last] = str(int(numbers[last]) - 1)
    return ".".join(numbers)


def _bundle_beside(disk: Path) -> Path:
    bundle = bundle_beside(disk)
    if bundle is None:
        raise ImageError(f"image {disk} has no update bundle beside it (.bundle.tar); pass --update-bundle")
    return bundle


def _plan(rig: Rig, image: Path, bundle: Path | None, bundles: Bundles) -> UpdatePlan:
    bundle = bundles.roles.get("good", bundle)
    if bundle is not None:
        info = read_bundle(bundle)
        version = bundles.version or (info.version if info else None)
        return UpdatePlan(image, bundle, image_version(image, rig.profile), version, info)
    if rig.kind not in VIRTUAL_KINDS:
        raise ImageError(f"rig {rig.name} is a {rig.kind} rig: name the update with --update-bundle(s)")
    target = image_version(image, rig.profile)
    if not target:
        raise ImageError(f"image {image} does not say its version; pass --update-bundle")
    bundle = _bundle_beside(image)
    base = build_reference(previous_version(target), arch=of_device_type(rig.device_type)).disk
    return UpdatePlan(base, bundle, image_version(base, rig.profile), target, read_bundle(bundle))


@pytest.fixture(scope="session")
def update_plan(
    rig: Rig,
    dut_image: Path,
    update_bundle: Path | None,
    update_bundles: Bundles,
    bundle_swaps: dict[BundleRole, BundleRole],
    tmp_path_factory: pytest.TempPathFactory,
    hil_suite_property: Any,
) -> UpdatePlan:
    """Base image and target bundle for the session (the good bundle: another role's, when swapped)."""
    plan = _plan(rig, dut_image, update_bundle, update_bundles)
    if "good" in bundle_swaps:
        swapped = _bundle(bundle_swaps["good"], rig, plan, update_bundles, tmp_path_factory.mktemp("swapped"))
        plan = replace(plan, bundle=swapped, info=read_bundle(swapped))
    hil_suite_property("hil.update_base", str(plan.base))
    hil_suite_property("hil.update_base_sha256", image_sha256(plan.base))  # flashed on purpose; not judged
    hil_suite_property("hil.update_bundle", str(plan.bundle))
    # The run's OS version is the image under test's: the target when that image is the update (the
    # reference flow); with bundles given, the image under test is the base, and its version stands.
    version = plan.base_version if plan.base == dut_image else plan.target_version
    if version:
        hil_suite_property("hil.os_version", version)
    return plan


# The broken variants hil's reference builder makes, by the role each bundle plays.
REFERENCE_VARIANTS: dict[BundleRole, str] = {
    "never-boots": "broken-init",
    "kernel-panics": "broken-kernel",
    "health-fails": "broken-health",
}
FOREIGN_DEVICE_TYPE = "raspberrypi4-64"


def _bundle(role: BundleRole, rig: Rig, plan: UpdatePlan, bundles: Bundles, made: Path) -> Path:
    """The bundle that plays `role`: the one --update-bundles names, else one hil can make (the good one cut
    short; for hil's own bundle format, another device type's copy and the reference image's broken
    variants); a role with neither skips the test, naming the role."""
    if role in bundles.roles:
        return bundles.roles[role]
    if role == "good":
        return plan.bundle
    if role == "truncated":  # an interrupted download, whatever the format
        return truncate_bundle(plan.bundle, made / f"truncated-{plan.bundle.name}")
    ours = plan.info is not None and plan.info.format == "hil"
    arch, target = for_device_type(rig.device_type), plan.target_version
    if ours and role == "other-compatible":
        return make_foreign_bundle(plan.bundle, FOREIGN_DEVICE_TYPE, made / "other-compatible.tar")
    if ours and role in REFERENCE_VARIANTS and arch and target:
        return build_reference(target, REFERENCE_VARIANTS[role], arch=arch.name).bundle
    pytest.skip(f"no {role} bundle: name one in --update-bundles (hil makes it for its own images only)")


@pytest.fixture(scope="session")
def bundle(
    rig: Rig,
    update_plan: UpdatePlan,
    update_bundles: Bundles,
    bundle_swaps: dict[BundleRole, BundleRole],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[BundleRole], Path]:
    """The bundle that plays a role (see _bundle), or the one --bundle-swap puts in its place."""
    made = tmp_path_factory.mktemp("bundles")
    return lambda role: _bundle(bundle_swaps.get(role, role), rig, update_plan, update_bundles, made)


@pytest.fixture
def fresh_dut(reflash_dut: Callable[..., Dut], update_plan: UpdatePlan) -> Dut:
    """The DUT reflashed with the base image and booted: every test here starts from it (the module's
    end flashes the image under test back for later suites)."""
    return reflash_dut(image=update_plan.base)
