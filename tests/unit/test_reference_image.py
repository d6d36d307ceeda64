"""The reference image as built: layout, files in each partition, bundle, cache (no QEMU)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from hil.errors import ToolMissing
from hil.images import hil_bundle as bundle
from hil.images.builders import bootenv
from hil.images.builders.disk import ESP_TYPE, partition_table
from hil.images.builders.reference import ReferenceImage, build_reference
from hil.images.builders.sshkey import default_public_key
from hil.images.builders.tools import require
from hil.images.osrelease import os_version


@pytest.fixture(scope="session")
def image() -> ReferenceImage:
    return build_reference("1.0.0", log=lambda line: None)


@pytest.fixture(scope="session")
def partitions(image: ReferenceImage) -> dict[str, dict]:
    return {p["name"]: p for p in partition_table(image.disk)}


def _extract(image: ReferenceImage, part: dict, out: Path) -> Path:
    with image.disk.open("rb") as disk:
        disk.seek(part["start"] * 512)
        out.write_bytes(disk.read(part["size"] * 512))
    return out


def _ext4_cat(fs: Path, path: str) -> str:
    return subprocess.run(
        ["debugfs", "-R", f"cat {path}", str(fs)], capture_output=True, text=True, check=True
    ).stdout


def _ext4_bytes(fs: Path, path: str) -> bytes:
    return subprocess.run(["debugfs", "-R", f"cat {path}", str(fs)], capture_output=True, check=True).stdout


def _vfat_cat(image: ReferenceImage, part: dict, path: str) -> bytes:
    return subprocess.run(
        ["mtype", "-i", f"{image.disk}@@{part['start'] * 512}", f"::/{path}"],
        capture_output=True,
        check=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    ).stdout


def test_disk_is_laid_out_like_balenaos(partitions: dict[str, dict]) -> None:
    assert list(partitions) == ["boot", "rootA", "rootB", "state", "data"]
    assert partitions["boot"]["type"] == ESP_TYPE
    assert partitions["boot"]["size"] * 512 == 32 * 1024 * 1024
    assert partitions["rootA"]["size"] == partitions["rootB"]["size"] == 64 * 2048


def test_disk_is_sparse(image: ReferenceImage) -> None:
    assert image.disk.stat().st_blocks * 512 < image.disk.stat().st_size / 2


def test_root_slot_names_the_version_and_device_type(image, partitions, tmp_path) -> None:
    root = _extract(image, partitions["rootA"], tmp_path / "rootA.img")
    release = dict(line.split("=", 1) for line in _ext4_cat(root, "/etc/os-release").splitlines())
    assert release["ID"] == "hil-reference"
    assert release["VERSION_ID"] == "1.0.0"
    assert release["SLUG"] == "qemux86-64"


def test_healthy_image_starts_every_service_and_a_serial_login(image, partitions, tmp_path) -> None:
    inittab = _ext4_cat(_extract(image, partitions["rootA"], tmp_path / "rootA.img"), "/etc/inittab")
    for service in ("dropbear", "chronyd", "dhcp"):
        assert f"/usr/lib/hil/svc/{service}.run" in inittab
    assert "getty -L 115200 ttyS0" in inittab


def test_boot_partition_holds_grub_and_each_root_slot_its_own_kernel_and_initramfs(
    image, partitions, tmp_path
) -> None:
    boot = partitions["boot"]
    assert _vfat_cat(image, boot, "EFI/BOOT/BOOTX64.EFI")[:2] == b"MZ"
    with pytest.raises(subprocess.CalledProcessError):
        _vfat_cat(image, boot, "vmlinuz")  # the kernel travels with the root, not on the shared partition
    for slot in ("rootA", "rootB"):
        root = _extract(image, partitions[slot], tmp_path / f"{slot}.img")
        assert _ext4_bytes(root, "/boot/vmlinuz")[0x202:0x206] == b"HdrS"  # the x86 boot protocol magic
        assert _ext4_bytes(root, "/boot/initrd")[:6] == b"070701"


def test_grub_boots_the_kernel_of_the_slot_it_picks(image, partitions) -> None:
    cfg = _vfat_cat(image, partitions["boot"], "EFI/BOOT/BOOTX64.EFI")
    assert b'linux "($disk,gpt$part)/boot/vmlinuz"' in cfg  # the memdisk holds grub.cfg uncompressed
    assert b"save_env" in cfg


def test_boot_partition_names_the_device_type_and_each_root_the_version(image, partitions) -> None:
    device_type = json.loads(_vfat_cat(image, partitions["boot"], "device-type.json"))
    assert device_type == {"slug": "qemux86-64"}  # the OS version is os-release's, as on balenaOS
    assert os_version(image.disk, 2) == os_version(image.disk, 3) == "1.0.0"


def test_default_config_lets_hils_key_in(image, partitions) -> None:
    config = json.loads(_vfat_cat(image, partitions["boot"], "config.json"))
    assert config["hostname"] == "hil-dut"
    assert config["os"]["sshKeys"] == [default_public_key()]


def test_fresh_image_boots_slot_a_with_nothing_pending(image, partitions) -> None:
    text = _vfat_cat(image, partitions["boot"], "bootenv").decode()
    assert bootenv.parse(text) == bootenv.BootEnv(active="A", pending=False, count=0, limit=2)
    assert text.startswith("# GRUB Environment Block\n") and len(text) == 1024  # GRUB rewrites it in place


def test_bundle_carries_the_root_slot_with_its_checksums(image, partitions, tmp_path) -> None:
    manifest = bundle.read_manifest(image.bundle)
    assert (manifest["version"], manifest["device_type"]) == ("1.0.0", "qemux86-64")
    root = _extract(image, partitions["rootA"], tmp_path / "rootA.img").read_bytes()
    assert manifest["rootfs"]["size"] == len(root)
    assert manifest["rootfs"]["sha256"] == hashlib.sha256(root).hexdigest()


def test_second_build_with_the_same_inputs_is_a_cache_hit(image: ReferenceImage) -> None:
    lines: list[str] = []
    again = build_reference("1.0.0", log=lines.append)
    assert again == image
    assert lines == [f"cached: {image.disk}"]


def test_leftovers_of_a_killed_build_are_removed_but_a_running_build_is_not(image: ReferenceImage) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    images = image.disk.parent.parent
    killed = images / f".tmp-0123456789abcdef-{dead.pid}"
    running = images / f".tmp-fedcba9876543210-{os.getpid()}"
    for tmp in (killed, running):
        tmp.mkdir()
        (tmp / "hil-reference-qemux86-64-1.0.0-healthy.img").write_bytes(b"half an image")
    try:
        build_reference("1.0.0", log=lambda line: None)
        assert not killed.exists()
        assert running.exists()
    finally:
        for tmp in (killed, running):
            if tmp.exists():
                for f in tmp.iterdir():
                    f.unlink()
                tmp.rmdir()


def test_missing_host_tool_names_the_apt_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match=r"`mcopy`.*apt-get install mtools"):
        require("mcopy")
