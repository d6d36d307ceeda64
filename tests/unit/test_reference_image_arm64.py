"""The arm64 reference image, built on this amd64 host from Debian's arm64 packages (no QEMU): the same
layout as on x86, with the Arm kernel, binaries, console and GRUB, and the host's apt left as it was."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from hil.images import hil_bundle as bundle
from hil.images.builders.debs import foreign_apt
from hil.images.builders.disk import partition_table
from hil.images.builders.reference import ReferenceImage, build_reference

EM_AARCH64 = 183


@pytest.fixture(scope="module")
def image() -> ReferenceImage:
    return build_reference("1.0.0", arch="aarch64", log=lambda line: None)


@pytest.fixture(scope="module")
def root(image: ReferenceImage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    part = next(p for p in partition_table(image.disk) if p["name"] == "rootA")
    fs = tmp_path_factory.mktemp("arm64") / "rootA.img"
    with image.disk.open("rb") as disk:
        disk.seek(part["start"] * 512)
        fs.write_bytes(disk.read(part["size"] * 512))
    return fs


def _cat(fs: Path, path: str) -> bytes:
    return subprocess.run(["debugfs", "-R", f"cat {path}", str(fs)], capture_output=True, check=True).stdout


def test_same_layout_as_on_x86_named_for_the_arm_board(image: ReferenceImage) -> None:
    assert [p["name"] for p in partition_table(image.disk)] == ["boot", "rootA", "rootB", "state", "data"]
    assert image.device_type == "generic-aarch64"
    assert bundle.read_manifest(image.bundle)["device_type"] == "generic-aarch64"


def test_root_carries_an_arm64_kernel_and_arm64_binaries(root: Path) -> None:
    assert _cat(root, "/boot/vmlinuz")[0x38:0x3C] == b"ARM\x64"  # the arm64 Image header magic
    for binary in ("/bin/busybox", "/usr/sbin/dropbear", "/usr/sbin/chronyd"):
        assert struct.unpack_from("<H", _cat(root, binary), 18)[0] == EM_AARCH64, binary
    link = subprocess.run(
        ["debugfs", "-R", "stat /lib/ld-linux-aarch64.so.1", str(root)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # where arm64 binaries look for the loader: a link into the library directory
    assert 'Fast link dest: "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"' in link
    assert (
        struct.unpack_from("<H", _cat(root, "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"), 18)[0]
        == EM_AARCH64
    )
    assert b"SLUG=generic-aarch64" in _cat(root, "/etc/os-release")
    assert b"getty -L 115200 ttyAMA0" in _cat(root, "/etc/inittab")


def test_boot_partition_holds_the_arm64_grub(image: ReferenceImage) -> None:
    boot = next(p for p in partition_table(image.disk) if p["name"] == "boot")
    efi = subprocess.run(
        ["mtype", "-i", f"{image.disk}@@{boot['start'] * 512}", "::/EFI/BOOT/BOOTAA64.EFI"],
        capture_output=True, check=True, env={"MTOOLS_SKIP_CHECK": "1"},
    ).stdout  # fmt: skip
    pe = struct.unpack_from("<I", efi, 0x3C)[0]
    assert efi[:2] == b"MZ" and struct.unpack_from("<H", efi, pe + 4)[0] == 0xAA64  # PE machine: arm64


def test_the_host_package_system_never_learns_the_arm64_architecture(image: ReferenceImage) -> None:
    foreign = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True, text=True)
    assert "arm64" not in foreign.stdout.split()


def test_arm64_packages_come_through_a_private_apt_configuration(tmp_path: Path) -> None:
    (tmp_path / "updated").touch()  # lists fresh: nothing is fetched here
    apt = foreign_apt("arm64", tmp_path)
    options = dict(option.split("=", 1) for option in apt.options)
    assert options["APT::Architecture"] == options["APT::Architectures"] == "arm64"
    assert Path(options["Dir::State"]).is_relative_to(tmp_path)
    assert Path(options["Dir::Etc::SourceList"]).is_relative_to(tmp_path)
    sources = Path(options["Dir::Etc::SourceList"]).read_text().splitlines()
    assert sources and all(line.startswith("deb [arch=arm64 ") for line in sources)
