"""The reference flasher as built: an installer medium that carries the healthy image (no QEMU)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from hil.drivers.config_json import ConfigPlace
from hil.drivers.qemu.flash import is_flasher
from hil.dut.provision import image_version
from hil.errors import ImageError
from hil.images.builders.disk import ESP_TYPE, LINUX_TYPE, partition_table
from hil.images.builders.reference import FLASHER, FLASHER_MARKER, ReferenceImage, build_reference
from hil.images.device_type import read_info
from hil.lab.rig import load_rig


@pytest.fixture(scope="module")
def healthy() -> ReferenceImage:
    return build_reference("1.0.0", log=lambda line: None)


@pytest.fixture(scope="module")
def flasher() -> ReferenceImage:
    return build_reference("1.0.0", FLASHER, log=lambda line: None)


@pytest.fixture(scope="module")
def partitions(flasher: ReferenceImage) -> dict[str, dict]:
    return {p["name"]: p for p in partition_table(flasher.disk)}


def _boot_file(flasher: ReferenceImage, partitions: dict[str, dict], path: str) -> bytes:
    start = partitions["flash-boot"]["start"] * 512
    return subprocess.run(
        ["mtype", "-i", f"{flasher.disk}@@{start}", f"::/{path}"],
        capture_output=True, check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    ).stdout  # fmt: skip


def _root_file(flasher: ReferenceImage, partitions: dict[str, dict], path: str, out: Path) -> Path:
    part = partitions["flash-rootA"]
    fs = out.with_suffix(".ext4")
    with flasher.disk.open("rb") as disk:
        disk.seek(part["start"] * 512)
        fs.write_bytes(disk.read(part["size"] * 512))
    subprocess.run(["debugfs", "-R", f"dump {path} {out}", str(fs)], capture_output=True, check=True)
    return out


def test_the_flasher_is_an_installer_medium_labelled_apart_from_the_os_it_installs(
    partitions: dict[str, dict],
) -> None:
    assert list(partitions) == ["flash-boot", "flash-rootA"]
    assert partitions["flash-boot"]["type"] == ESP_TYPE and partitions["flash-rootA"]["type"] == LINUX_TYPE


def test_its_boot_partition_carries_balenas_flasher_marker_and_a_default_config(
    flasher: ReferenceImage, healthy: ReferenceImage, partitions: dict[str, dict]
) -> None:
    assert _boot_file(flasher, partitions, FLASHER_MARKER) == b""
    place = ConfigPlace(1, "/config.json")  # the reference profile's
    assert is_flasher(flasher.disk, place) and not is_flasher(healthy.disk, place)
    assert json.loads(_boot_file(flasher, partitions, "config.json"))["os"]["sshKeys"]
    for name in ("vmlinuz", "initrd", "EFI/BOOT/BOOTX64.EFI"):
        assert _boot_file(flasher, partitions, name)


def test_it_names_the_device_type_and_the_version_it_installs(flasher: ReferenceImage) -> None:
    assert read_info(flasher.disk).device_type == "qemux86-64"
    assert image_version(flasher.disk, load_rig("qemu-x86_64").profile) == "1.0.0"


def test_its_initramfs_is_the_installer(flasher: ReferenceImage, partitions: dict[str, dict]) -> None:
    initrd = _boot_file(flasher, partitions, "initrd")
    assert initrd[:6] == b"070701"
    assert b"hil-flasher: installed onto" in initrd and b"poweroff -f" in initrd
    assert b"hil.slot" not in initrd, "the A/B root switch came along"


def test_it_carries_the_healthy_image_byte_for_byte_and_its_bundle(
    flasher: ReferenceImage, healthy: ReferenceImage, partitions: dict[str, dict], tmp_path: Path
) -> None:
    name = f"{healthy.disk.name}.gz"
    payload = _root_file(flasher, partitions, f"/opt/{name}", tmp_path / name)
    carried = hashlib.sha256()
    with gzip.open(payload, "rb") as unpacked:
        while chunk := unpacked.read(1 << 20):
            carried.update(chunk)
    assert carried.hexdigest() == hashlib.sha256(healthy.disk.read_bytes()).hexdigest()
    assert flasher.bundle.read_bytes() == healthy.bundle.read_bytes()


def test_an_unknown_variant_is_refused_naming_the_flasher_too() -> None:
    with pytest.raises(ImageError, match=r"'installer'; choose one of healthy, .*\bflasher\b"):
        build_reference("1.0.0", "installer")
