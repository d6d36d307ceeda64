"""Editing files inside a disk image's partitions without a mount: FAT and ext4, raw images in place and
qcow2 overlays through a raw copy of the partition, whose base never changes."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from hil.errors import ImageError
from hil.images.edit import read_file, write_file
from tests.support.disk_images import make_disk

MIB = 1 << 20


def _with_ext4(disk: Path, tmp_path: Path) -> Path:
    """`disk` (make_disk's layout) with an ext4 filesystem holding /etc/os-release in its second partition."""
    tree = tmp_path / "root"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "os-release").write_text('VERSION_ID="1.0.0"\n')
    fs = tmp_path / "root.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(fs), "2M"], check=True, capture_output=True)
    with disk.open("r+b") as f:
        f.seek(5 * MIB)
        f.write(fs.read_bytes())
    return disk


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    return _with_ext4(make_disk(tmp_path / "os.img", boot_files={"cmdline.txt": b"quiet\n"}), tmp_path)


def _overlay(base: Path) -> Path:
    overlay = base.with_name("overlay.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(overlay)],
                   check=True)  # fmt: skip
    return overlay


def test_a_file_on_the_boot_partition_of_a_raw_image_is_replaced_in_place(disk: Path) -> None:
    write_file(disk, 1, "/config.json", b'{"hostname": "dut"}')
    assert read_file(disk, 1, "config.json") == b'{"hostname": "dut"}'
    assert read_file(disk, 1, "/cmdline.txt") == b"quiet\n"


def test_an_ext4_file_is_replaced_and_reads_back(disk: Path) -> None:
    assert read_file(disk, 2, "/etc/os-release") == b'VERSION_ID="1.0.0"\n'
    write_file(disk, 2, "/etc/os-release", b'VERSION_ID="2.0.0"\n')
    assert read_file(disk, 2, "/etc/os-release") == b'VERSION_ID="2.0.0"\n'


def test_a_qcow2_overlay_is_edited_and_its_base_is_not(disk: Path) -> None:
    base_sum = hashlib.sha256(disk.read_bytes()).hexdigest()
    overlay = _overlay(disk)
    write_file(overlay, 1, "/config.json", b"{}")
    write_file(overlay, 2, "/etc/os-release", b'VERSION_ID="3"\n')
    assert read_file(overlay, 1, "/config.json") == b"{}"
    assert read_file(overlay, 2, "/etc/os-release") == b'VERSION_ID="3"\n'
    assert hashlib.sha256(disk.read_bytes()).hexdigest() == base_sum
    with pytest.raises(ImageError, match=r"config\.json"):
        read_file(disk, 1, "/config.json")
    # Only the blocks that changed went into the overlay, not whole partitions.
    assert overlay.stat().st_size < 2 * MIB


@pytest.mark.parametrize("path", ["../etc/passwd", "/"])
def test_a_path_that_is_not_a_file_inside_the_filesystem_is_refused(disk: Path, path: str) -> None:
    with pytest.raises(ImageError, match="not a file path inside a filesystem"):
        write_file(disk, 1, path, b"x")


def test_a_missing_partition_or_file_is_named(disk: Path) -> None:
    with pytest.raises(ImageError, match=r"has no partition 7 \(it has: 1, 2\)"):
        read_file(disk, 7, "/x")
    with pytest.raises(ImageError, match="reading /etc/shadow from partition 2"):
        read_file(disk, 2, "/etc/shadow")
