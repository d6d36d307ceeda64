"""Choose the image for a rig and assemble its DUT: the one path the plugin, the CLI and the benches share."""

from __future__ import annotations

import logging
from pathlib import Path

from hil.dut import Dut
from hil.dut.boards import make_board
from hil.errors import ImageError
from hil.images.arch import of_device_type
from hil.images.builders.reference import build_reference
from hil.images.device_type import read_info
from hil.images.osrelease import os_version
from hil.lab.rig import VIRTUAL_KINDS, Rig
from hil.os.model import OsProfile

log = logging.getLogger("hil.dut.provision")


def resolve_image(rig: Rig, image: Path | None, version: str = "1.0.0") -> Path:
    """The image to flash: the one given, else (virtual rigs only) the reference image, built if needed."""
    if image is not None:
        if not image.is_file():
            raise ImageError(f"image {image} does not exist")
        return image
    if rig.kind not in VIRTUAL_KINDS:
        raise ImageError(f"rig {rig.name} is a {rig.kind} rig: name the image to flash with --image")

    return build_reference(version, arch=of_device_type(rig.device_type), log=log.info).disk


def image_version(image: Path, profile: OsProfile) -> str | None:
    """The OS version an image carries: os-release in the first root slot the profile's layout names,
    else what a sidecar says (`<image>.json`); None when neither says."""
    slots = sorted(p.number for p in profile.layout.partitions.values() if p.holds == "slot")
    if slots:
        return os_version(image, slots[0])
    return read_info(image).version


def open_dut(rig: Rig, artifacts: Path) -> Dut:
    """A powered-off DUT on `rig`, its logs going to `artifacts`."""
    artifacts.mkdir(parents=True, exist_ok=True)
    return Dut(rig, make_board(rig, rig.profile, artifacts), artifacts)
