"""The flasher: writes what the image holds (and only where needed), verifies it, and reports progress."""

from __future__ import annotations

import gzip
import io
import json
import logging
import lzma
import os
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from hil.drivers.config_json import ConfigPlace, write_config_json
from hil.drivers.flasher import flash, verify_written, write_image
from hil.drivers.progress import LogProgress, TerminalProgress
from hil.errors import FlashError, ImageError
from hil.images.edit import read_file
from tests.support.disk_images import make_disk

MIB = 1 << 20


def sparse_image(path: Path, size_mib: int = 16) -> Path:
    """An image with data in every other MiB and zeros (holes) elsewhere."""
    with open(path, "wb") as f:
        f.truncate(size_mib * MIB)
        for mib in range(0, size_mib, 2):
            f.seek(mib * MIB)
            f.write(os.urandom(MIB))
    return path


def make_bmap(image: Path) -> Path:
    bmap = image.with_name(image.name + ".bmap")
    subprocess.run(["bmaptool", "create", "-o", str(bmap), str(image)], check=True, capture_output=True)
    return bmap


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return sparse_image(tmp_path / "os.img")


@pytest.fixture
def quiet() -> LogProgress:
    return LogProgress("test")


def test_a_raw_image_lands_byte_for_byte_and_its_zero_blocks_are_skipped(
    image: Path, tmp_path: Path, quiet: LogProgress
) -> None:
    target = tmp_path / "card.bin"
    target.write_bytes(b"\xff" * (20 * MIB))  # old data: must not survive where the image has zeros
    report = flash(image, target, progress=quiet)
    assert target.read_bytes()[: 16 * MIB] == image.read_bytes()
    assert (report.bytes_written, report.bytes_total, report.verified) == (8 * MIB, 16 * MIB, True)


@pytest.mark.parametrize("fmt", ["gz", "xz", "zip"])
def test_a_compressed_image_is_streamed_to_the_target(
    image: Path, tmp_path: Path, fmt: str, quiet: LogProgress
) -> None:
    data = image.read_bytes()
    packed = tmp_path / f"packed.img.{fmt}"
    if fmt == "gz":
        packed.write_bytes(gzip.compress(data, compresslevel=1))
    elif fmt == "xz":
        packed.write_bytes(lzma.compress(data, preset=0))
    else:
        with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("os.img", data)
    target = tmp_path / "card.bin"
    flash(packed, target, progress=quiet)
    assert target.read_bytes() == data


def test_with_a_bmap_only_the_mapped_ranges_are_written(
    image: Path, tmp_path: Path, quiet: LogProgress
) -> None:
    make_bmap(image)
    packed = tmp_path / "os.img.xz"
    packed.write_bytes(lzma.compress(image.read_bytes(), preset=0))
    target = tmp_path / "card.bin"
    report = flash(packed, target, progress=quiet)
    assert report.bmap == tmp_path / "os.img.bmap"
    assert report.bytes_written == 8 * MIB
    assert target.read_bytes() == image.read_bytes()


def test_an_image_that_no_longer_matches_its_bmap_is_named_corrupt(
    image: Path, tmp_path: Path, quiet: LogProgress
) -> None:
    make_bmap(image)
    with open(image, "r+b") as f:
        f.seek(3)
        f.write(b"X")
    refusal = r"image .*os\.img is corrupt: bytes 0\+\d+ do not match its bmap os\.img\.bmap$"
    with pytest.raises(ImageError, match=refusal):
        flash(image, tmp_path / "card.bin", progress=quiet)
    assert not (tmp_path / "card.bin").exists()  # refused before the target was even created


def old_card(path: Path) -> tuple[int, bytes]:
    path.write_bytes(b"old card contents" * 100_000)
    return path.stat().st_mtime_ns, path.read_bytes()


def test_a_bmap_for_another_size_of_image_is_refused_before_writing(
    image: Path, tmp_path: Path, quiet: LogProgress
) -> None:
    make_bmap(image)
    with open(image, "ab") as f:
        f.write(bytes(4096))
    target = tmp_path / "card.bin"
    before = old_card(target)
    sizes = rf"describes a {16 * MIB}-byte image; image .*os\.img holds {16 * MIB + 4096} bytes$"
    refusal = rf"bmap .*os\.img\.bmap {sizes}"
    with pytest.raises(ImageError, match=refusal):
        flash(image, target, progress=quiet)
    assert (target.stat().st_mtime_ns, target.read_bytes()) == before


def two_image_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.img", b"a" * 4096)
        archive.writestr("b.img", b"b" * 4096)
    return path


@pytest.mark.parametrize(
    ("name", "make", "refusal"),
    [
        ("blank.img", lambda p: p.write_bytes(b""), r"image .*blank\.img is empty \(0 bytes\)$"),
        ("blank.img.gz", lambda p: p.write_bytes(gzip.compress(b"")), "is empty: it decodes to 0 bytes$"),
        ("two.zip", two_image_zip, r"must hold exactly one image; it holds \['a.img', 'b.img'\]$"),
    ],
)
def test_an_image_with_nothing_to_write_leaves_the_target_untouched(
    tmp_path: Path, name: str, make: Callable[[Path], object], refusal: str, quiet: LogProgress
) -> None:
    make(tmp_path / name)
    target = tmp_path / "card.bin"
    before = old_card(target)
    with pytest.raises(ImageError, match=refusal):
        flash(tmp_path / name, target, progress=quiet)
    assert (target.stat().st_mtime_ns, target.read_bytes()) == before


def test_a_truncated_gzip_with_a_bmap_is_refused_before_writing(
    image: Path, tmp_path: Path, quiet: LogProgress
) -> None:
    make_bmap(image)
    packed = tmp_path / "os.img.gz"
    packed.write_bytes(gzip.compress(image.read_bytes(), compresslevel=1)[:-5000])
    target = tmp_path / "card.bin"
    before = old_card(target)
    with pytest.raises(ImageError, match=r"image .*os\.img\.gz is corrupt at byte \d+: "):
        flash(packed, target, progress=quiet, before_write=lambda: pytest.fail("began writing"))
    assert (target.stat().st_mtime_ns, target.read_bytes()) == before


def test_an_image_that_fails_to_decode_mid_write_says_the_target_is_half_written(
    image: Path, tmp_path: Path, quiet: LogProgress
) -> None:
    packed = tmp_path / "os.img.gz"  # gzip has no index: its truncation shows only while decoding
    packed.write_bytes(gzip.compress(image.read_bytes(), compresslevel=1)[:-5000])
    target = tmp_path / "card.bin"
    old_card(target)
    started: list[bool] = []
    half_written = (
        r"image .*os\.img\.gz is corrupt at byte \d+: .*; .*card\.bin is now half-written: flash it again$"
    )
    with pytest.raises(FlashError, match=half_written):
        flash(packed, target, progress=quiet, before_write=lambda: started.append(True))
    assert started == [True]


@pytest.mark.parametrize("with_bmap", [False, True])
def test_verify_catches_a_corrupted_write(
    image: Path, tmp_path: Path, with_bmap: bool, quiet: LogProgress
) -> None:
    if with_bmap:
        make_bmap(image)
    target = tmp_path / "card.bin"
    written = write_image(image, target, progress=quiet)
    corrupt_at = 2 * MIB + 12345
    with open(target, "r+b") as f:
        f.seek(corrupt_at)
        original = f.read(1)
        f.seek(corrupt_at)
        f.write(bytes([original[0] ^ 0x01]))
    with pytest.raises(FlashError, match=f"verify failed at offset {corrupt_at}: "):
        verify_written(image, target, written, progress=quiet)


def test_a_target_that_is_neither_a_disk_nor_a_file_is_refused(image: Path, quiet: LogProgress) -> None:
    with pytest.raises(
        FlashError, match="refusing to flash /dev/null: it is neither a block device nor a regular"
    ):
        flash(image, Path("/dev/null"), progress=quiet)


def test_progress_is_logged_about_every_five_percent_off_a_terminal(
    image: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hil.flasher")
    flash(image, tmp_path / "card.bin", progress=LogProgress("flash os.img"), block_size=64 * 1024)
    writes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("flash os.img write:")]
    assert 20 <= len(writes) <= 22
    assert writes[-1].startswith("flash os.img write: 16 MiB (100%) at ")


def test_an_image_is_never_flashed_onto_itself(image: Path, quiet: LogProgress) -> None:
    before = image.read_bytes()
    with pytest.raises(FlashError, match="it is the image itself"):
        flash(image, image, progress=quiet)
    assert image.read_bytes() == before


def test_a_terminal_gets_a_bar_with_throughput(image: Path, tmp_path: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    flash(image, tmp_path / "card.bin", progress=TerminalProgress("flash os.img", console=console))
    shown = screen.getvalue()
    assert "flash os.img write" in shown and "flash os.img verify" in shown
    assert "16.0/16.0 MiB" in shown and "/s" in shown


def test_config_json_is_written_into_the_boot_partition(tmp_path: Path) -> None:
    disk = make_disk(tmp_path / "os.img", boot_files={"device-type.json": b"{}"})
    write_config_json(disk, {"hostname": "rig-7", "wifi": {"ssid": "lab"}}, ConfigPlace())
    shown = subprocess.run(
        ["mtype", "-i", f"{disk}@@{MIB}", "::/config.json"],
        capture_output=True,
        check=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    ).stdout
    assert json.loads(shown) == {"hostname": "rig-7", "wifi": {"ssid": "lab"}}


def test_config_json_needs_a_boot_partition(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(2 * MIB))
    with pytest.raises(ImageError, match=r"has no FAT partition for config\.json"):
        write_config_json(blank, {}, ConfigPlace())
    with pytest.raises(ImageError, match=r"has no partition 3 for config\.json"):
        write_config_json(make_disk(tmp_path / "os.img", boot_files={}), {}, ConfigPlace(3, "/config.json"))


def test_config_json_goes_where_the_place_says(tmp_path: Path) -> None:
    disk = make_disk(tmp_path / "os.img", boot_files={"device-type.json": b"{}"})
    write_config_json(disk, {"hostname": "x"}, ConfigPlace(1, "/device-config.json"))
    assert json.loads(read_file(disk, 1, "/device-config.json")) == {"hostname": "x"}
