"""What the hostapp_update suite updates from and to, and the known state each of its tests starts in.

Base and target, as meta-balena's HUP suite chooses them:
- `--update-bundle BUNDLE`: the image under test (`--image`) is the base and BUNDLE the target;
- without it, on virtual rigs: the image under test is the target (its update bundle lies beside it, as
  the reference image builder writes it) and the base is the reference image one version earlier,
  built here. "One version earlier" lowers the last non-zero number (1.0.0 -> 0.0.0, 1.2.3 -> 1.2.2):
  always an older release, built from today's packages, so only the update path differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hil.dut import Dut
from hil.errors import ImageError
from hil.images.builders.bundle import read_manifest
from hil.images.hash import image_sha256
from hil.images.read import read_info
from hil.lab.rig import VIRTUAL_KINDS, Rig


@dataclass(frozen=True)
class UpdatePlan:
    """The image flashed before each test and the bundle that updates it."""

    base: Path
    bundle: Path
    base_version: str | None
    target_version: str | None
    manifest: dict[str, Any] | None  # the bundle's manifest when it is in hil's bundle format


def previous_version(version: str) -> str:
    """The version one release earlier: the last non-zero number lowered by one."""
    numbers = version.split(".")
    if not all(n.isdigit() for n in numbers) or not any(int(n) for n in numbers):
        raise ImageError(f"no earlier version than {version!r} to update from; pass --update-bundle")
    last = max(i for i, n in enumerate(numbers) if int(n))
    numbers[last] = str(int(numbers[last]) - 1)
    return ".".join(numbers)


def _bundle_beside(disk: Path) -> Path:
    bundle = disk.with_name(disk.name.removesuffix(".img") + ".bundle.tar")
    if not bundle.is_file():
        raise ImageError(f"image {disk} has no update bundle beside it ({bundle.name}); pass --update-bundle")
    return bundle


def _manifest(bundle: Path) -> dict[str, Any] | None:
    try:
        return read_manifest(bundle)
    except ImageError:
        return None  # another OS' bundle format: only its own updater reads it


def _plan(rig: Rig, image: Path, bundle: Path | None) -> UpdatePlan:
    if bundle is not None:
        manifest = _manifest(bundle)
        version = manifest.get("version") if manifest else None
        return UpdatePlan(image, bundle, read_info(image).version, version, manifest)
    if rig.kind not in VIRTUAL_KINDS:
        raise ImageError(f"rig {rig.name} is a {rig.kind} rig: name the update with --update-bundle")
    from hil.images.arch import of_device_type
    from hil.images.builders.reference import build_reference

    target = read_info(image).version
    if not target:
        raise ImageError(f"image {image} does not say its version; pass --update-bundle")
    bundle = _bundle_beside(image)
    base = build_reference(previous_version(target), arch=of_device_type(rig.device_type)).disk
    return UpdatePlan(base, bundle, read_info(base).version, target, _manifest(bundle))


@pytest.fixture(scope="session")
def update_plan(rig: Rig, dut_image: Path, update_bundle: Path | None, hil_suite_property: Any) -> UpdatePlan:
    """Base image and target bundle for the session."""
    plan = _plan(rig, dut_image, update_bundle)
    hil_suite_property("hil.update_base", str(plan.base))
    hil_suite_property("hil.update_base_sha256", image_sha256(plan.base))  # flashed on purpose; not judged
    hil_suite_property("hil.update_bundle", str(plan.bundle))
    if plan.target_version:
        hil_suite_property("hil.os_version", plan.target_version)
    return plan


@pytest.fixture(scope="session")
def variant_bundle(rig: Rig, update_plan: UpdatePlan) -> Callable[[str], Path]:
    """Build the target version's bundle of a deliberately broken reference variant (skips elsewhere)."""

    def build(variant: str) -> Path:
        from hil.images.arch import for_device_type
        from hil.images.builders.reference import build_reference

        arch = for_device_type(rig.device_type)
        if update_plan.manifest is None or arch is None or not update_plan.target_version:
            pytest.skip(
                f"broken {variant} bundles are built for hil's reference image on its virtual boards only"
            )
        return build_reference(update_plan.target_version, variant, arch=arch.name).bundle

    return build


@pytest.fixture
def fresh_dut(reflash_dut: Callable[..., Dut], update_plan: UpdatePlan) -> Dut:
    """The DUT reflashed with the base image and booted: every test here starts from it (the module's
    end flashes the image under test back for later suites)."""
    return reflash_dut(image=update_plan.base)
