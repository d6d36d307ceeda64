"""Broken variants of the reference image and the bundles the rejection tests use (no QEMU)."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from hil.errors import ImageError
from hil.images import hil_bundle as bundle
from hil.images.builders.disk import partition_table
from hil.images.builders.reference import VARIANTS, ReferenceImage, build_reference


def _root_bytes(image: ReferenceImage, path: str, tmp_path: Path) -> bytes:
    root = next(p for p in partition_table(image.disk) if p["name"] == "rootA")
    fs = tmp_path / "rootA.img"
    with image.disk.open("rb") as disk:
        disk.seek(root["start"] * 512)
        fs.write_bytes(disk.read(root["size"] * 512))
    return subprocess.run(["debugfs", "-R", f"cat {path}", str(fs)], capture_output=True, check=True).stdout


def _root_file(image: ReferenceImage, path: str, tmp_path: Path) -> str:
    return _root_bytes(image, path, tmp_path).decode()


@pytest.fixture(scope="module")
def healthy() -> ReferenceImage:
    return build_reference("1.0.1", log=lambda line: None)


@pytest.mark.parametrize(
    ("variant", "missing"),
    [("broken-health", "dropbear"), ("no-dhcp", "dhcp"), ("no-chrony", "chronyd")],
)
def test_variant_leaves_its_service_out_of_inittab(variant: str, missing: str, tmp_path: Path) -> None:
    image = build_reference("1.0.1", variant, log=lambda line: None)
    inittab = _root_file(image, "/etc/inittab", tmp_path)
    assert f"/usr/lib/hil/svc/{missing}.run" not in inittab
    assert "getty -L 115200 ttyS0" in inittab
    assert bundle.read_manifest(image.bundle)["variant"] == variant


def test_broken_init_variant_has_an_init_that_exits(tmp_path: Path) -> None:
    image = build_reference("1.0.1", "broken-init", log=lambda line: None)
    init = _root_file(image, "/sbin/init", tmp_path)
    assert init.startswith("#!/bin/sh") and "exit 1" in init


def test_broken_kernel_variant_ships_an_initramfs_without_init(
    healthy: ReferenceImage, tmp_path: Path
) -> None:
    image = build_reference("1.0.1", "broken-kernel", log=lambda line: None)
    broken = _root_bytes(image, "/boot/initrd", tmp_path)
    assert broken[:6] == b"070701" and b"init" not in broken  # the kernel finds no root and panics
    assert b"init" in _root_bytes(healthy, "/boot/initrd", tmp_path)
    assert _root_bytes(image, "/boot/vmlinuz", tmp_path) == _root_bytes(healthy, "/boot/vmlinuz", tmp_path)


def test_every_variant_is_offered() -> None:
    assert VARIANTS == ("healthy", "broken-init", "broken-kernel", "broken-health", "no-dhcp", "no-chrony")


def test_unknown_variant_is_refused_by_name() -> None:
    with pytest.raises(ImageError, match=r"'no-kernel'.*broken-init"):
        build_reference("1.0.1", "no-kernel")


def test_version_that_could_break_the_shell_is_refused() -> None:
    with pytest.raises(ImageError, match="version"):
        build_reference("1.0; reboot")


def test_foreign_bundle_claims_the_other_device_type_with_valid_checksums(healthy, tmp_path) -> None:
    foreign = bundle.make_foreign_bundle(healthy.bundle, "raspberrypi4-64", tmp_path / "foreign.tar")
    original, changed = bundle.read_manifest(healthy.bundle), bundle.read_manifest(foreign)
    assert changed["device_type"] == "raspberrypi4-64"
    assert changed["rootfs"] == original["rootfs"]


def test_truncated_bundle_keeps_its_manifest_but_loses_root_bytes(healthy, tmp_path) -> None:
    cut = bundle.truncate_bundle(healthy.bundle, tmp_path / "cut.tar")
    assert cut.stat().st_size < healthy.bundle.stat().st_size
    assert bundle.read_manifest(cut) == bundle.read_manifest(healthy.bundle)
    with tarfile.open(cut) as tar, pytest.raises(tarfile.ReadError):
        member = tar.extractfile(bundle.ROOTFS)
        assert member is not None
        member.read()


def test_a_file_that_is_not_a_bundle_is_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar")
    with pytest.raises(ImageError, match=r"junk\.tar is not an update bundle"):
        bundle.read_manifest(junk)
