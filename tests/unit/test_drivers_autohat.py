"""The autohat flash: a card left half-written keeps its rig out of the pools until a flash succeeds."""

from __future__ import annotations

import gzip
import lzma
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from hil.drivers import flasher
from hil.drivers.autohat import AutohatBoard
from hil.drivers.card import CardIdentity
from hil.drivers.config_json import ConfigPlace
from hil.drivers.fake_sysfs import FakeBlockTree
from hil.drivers.power import RelayPower
from hil.drivers.sdmux import GpioSdMux
from hil.errors import FlashError, ImageError
from hil.lab.pool import HalfWrittenCard, health, record_health
from tests.support.disk_images import make_disk

RIG = "bench-1"
READER = CardIdentity(vendor_id="0424", product_id="4041", serial="000000264001")


@pytest.fixture
def board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AutohatBoard]:
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    lab = FakeBlockTree(tmp_path / "lab")
    lab.add_usb_disk("sda", vendor_id="0424", product_id="4041", serial="000000264001", size_bytes=1 << 30)
    pins = MockFactory()
    board = AutohatBoard(
        RIG, power=RelayPower(4, pin_factory=pins), mux=GpioSdMux(5, False, lab.locator(READER), pins),
        console_port="/dev/null", baudrate=115200, ssh_host="127.0.0.1", ssh_port=22,
        max_card_bytes=1 << 30, device_type="raspberrypi4-64", off_time=0.1, guard=HalfWrittenCard(RIG),
        config_place=ConfigPlace(),
    )  # fmt: skip
    yield board
    board.close()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return make_disk(tmp_path / "os.img", boot_files={"device-type.json": b'{"slug": "raspberrypi4-64"}'})


def truncated_gz(image: Path) -> Path:
    """gzip has no index: its truncation shows only when decoding reaches the end, mid-write."""
    packed = image.with_name("os.img.gz")
    packed.write_bytes(gzip.compress(image.read_bytes())[:-1000])
    return packed


def test_a_flash_that_fails_mid_write_marks_the_rig_for_a_reflash_until_one_succeeds(
    board: AutohatBoard, image: Path
) -> None:
    packed = truncated_gz(image)
    with pytest.raises(FlashError, match=r"is corrupt at byte \d+: .* is now half-written: flash it again$"):
        board.flash(packed, {})
    marked = health(RIG)
    assert marked is not None and not marked.healthy
    assert marked.reason == f"card half-written by a failed flash of {packed}; reflash it"
    board.flash(image, {})
    cleared = health(RIG)
    assert cleared is not None and cleared.healthy


def test_the_mark_is_written_before_the_first_byte_so_a_killed_flash_leaves_it(
    board: AutohatBoard, image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*args: object) -> None:
        raise KeyboardInterrupt  # as a cancelled job (SIGTERM) unwinds mid-write

    monkeypatch.setattr(flasher, "_write_all", killed)
    with pytest.raises(KeyboardInterrupt):
        board.flash(image, {})
    marked = health(RIG)
    assert marked is not None and not marked.healthy and "half-written" in marked.reason


def test_a_refused_image_writes_nothing_and_marks_nothing(board: AutohatBoard, image: Path) -> None:
    packed = image.with_name("os.img.xz")
    packed.write_bytes(lzma.compress(image.read_bytes(), preset=0)[:-2000])
    with pytest.raises(ImageError, match="no valid xz stream footer"):
        board.flash(packed, {})
    assert health(RIG) is None


def test_a_rig_unhealthy_for_another_reason_keeps_that_reason(board: AutohatBoard, image: Path) -> None:
    record_health(RIG, False, "serial: the serial line stayed silent")
    with pytest.raises(FlashError, match="half-written"):
        board.flash(truncated_gz(image), {})
    board.flash(image, {})
    kept = health(RIG)
    assert kept is not None and (kept.healthy, kept.reason) == (
        False,
        "serial: the serial line stayed silent",
    )
