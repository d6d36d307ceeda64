"""Card identity: the rig's card is found by its reader's USB identity, and every other disk is refused."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from disk_images import make_disk

from hil.drivers.card import CardIdentity
from hil.drivers.fake_sysfs import FakeBlockTree
from hil.drivers.flasher import flash_card
from hil.errors import FlashError, HilError, RigConfigError

GIB = 1 << 30
READER = CardIdentity(vendor_id="0424", product_id="4041", serial="000000264001")


@pytest.fixture
def tree(tmp_path: Path) -> FakeBlockTree:
    tree = FakeBlockTree(tmp_path / "host")
    tree.add_internal_disk("vda", size_bytes=64 * GIB)
    tree.mount("vda1", "/")
    tree.add_usb_disk("sda", vendor_id="0424", product_id="4041", serial="000000264001", size_bytes=8 * GIB)
    tree.add_usb_disk(
        "sdb", vendor_id="0424", product_id="4041", serial="000000999999", size_bytes=8 * GIB, port=2
    )
    return tree


def test_the_card_is_found_by_its_readers_usb_identity(tree: FakeBlockTree) -> None:
    card = tree.locator(READER).find()
    assert card is not None
    assert (card.name, card.device, card.size_bytes) == ("sda", tree.dev / "sda", 8 * GIB)


def test_the_card_is_found_by_its_by_path_name(tree: FakeBlockTree) -> None:
    by_path = tree.disks["sdb"].by_path
    card = tree.locator(CardIdentity(by_path=f"/dev/disk/by-path/{by_path}")).find()
    assert card is not None and card.name == "sdb"


def test_an_identity_matching_two_readers_is_refused_as_ambiguous(tree: FakeBlockTree) -> None:
    with pytest.raises(FlashError, match=r"matches 2 disks \(sda, sdb\); add its serial"):
        tree.locator(CardIdentity(vendor_id="0424", product_id="4041")).find()


def test_an_identity_needs_usb_ids_or_a_by_path() -> None:
    with pytest.raises(RigConfigError, match="needs vendor_id and product_id, or by_path"):
        CardIdentity(serial="123")


def test_a_reader_without_media_has_no_card(tree: FakeBlockTree) -> None:
    tree.set_media("sda", present=False)
    assert tree.locator(READER).find() is None


def test_wait_returns_once_the_card_appears(tree: FakeBlockTree) -> None:
    tree.set_media("sda", present=False)
    threading.Timer(0.3, tree.set_media, args=("sda", True)).start()
    assert tree.locator(READER).wait(timeout=10).name == "sda"


def test_wait_names_the_reader_it_waited_for(tree: FakeBlockTree) -> None:
    tree.set_media("sda", present=False)
    with pytest.raises(FlashError, match=r"card reader usb 0424:4041 serial 000000264001: no card appeared"):
        tree.locator(READER).wait(timeout=0.3)


def test_the_rigs_own_card_passes_the_write_checks(tree: FakeBlockTree) -> None:
    card = tree.locator(READER).check_writable(Path("/dev/sda"), max_bytes=32 * GIB)
    assert card.device == tree.dev / "sda"


def test_a_by_id_style_link_to_the_card_passes_the_write_checks(tree: FakeBlockTree) -> None:
    link = tree.dev / "disk" / "by-id" / "usb-card"
    link.parent.mkdir()
    link.symlink_to("../../sda")
    assert tree.locator(READER).check_writable(link, max_bytes=32 * GIB).name == "sda"


def fingerprint(tree: FakeBlockTree) -> dict[str, tuple[int, int, bytes]]:
    """mtime, size and first MiB of every fake disk's bytes: any write would change them."""
    prints = {}
    for name, disk in tree.disks.items():
        with open(disk.backing, "rb") as f:
            prints[name] = (disk.backing.stat().st_mtime_ns, disk.backing.stat().st_size, f.read(1 << 20))
    return prints


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return make_disk(tmp_path / "os.img", boot_files={"device-type.json": b'{"slug": "raspberrypi4-64"}'})


@pytest.mark.parametrize(
    ("setup", "device", "reason"),
    [
        (None, "/dev/sdb", r"refusing to flash /dev/sdb: it is not the rig's card reader usb 0424:4041"),
        (None, "/dev/vda", "refusing to flash /dev/vda: it is not the rig's card reader"),
        (None, "/dev/sda1", r"refusing to flash /dev/sda1: it is not a whole disk the host knows"),
        (("mount", "sda1", "/media/card"), "/dev/sda", "sda1 is mounted at /media/card"),
        (("mount", "sda", "/"), "/dev/sda", "sda holds the host's root filesystem"),
        (("stack", "sda1", "dm-0"), "/dev/sda", "dm-0 is mounted at /srv/data"),
        (("read_only",), "/dev/sda", "the card is write-protected"),
        (("max", 4 * GIB), "/dev/sda", "more than the rig's max card size of 4294967296 bytes"),
        (("device_type", "qemux86-64"), "/dev/sda", "is built for raspberrypi4-64; the rig takes qemux86-64"),
    ],
)
def test_flash_refuses_a_disk_it_must_not_write_and_writes_nothing(
    tree: FakeBlockTree, image: Path, setup: tuple | None, device: str, reason: str
) -> None:
    max_bytes, device_type = 32 * GIB, "raspberrypi4-64"
    if setup and setup[0] == "mount":
        tree.mount(setup[1], setup[2])
    elif setup and setup[0] == "stack":
        tree.stack(setup[1], setup[2])
        tree.mount(setup[2], "/srv/data")
    elif setup and setup[0] == "read_only":
        tree.set_read_only("sda", True)
    elif setup and setup[0] == "max":
        max_bytes = setup[1]
    elif setup and setup[0] == "device_type":
        device_type = setup[1]
    for disk in tree.disks.values():
        disk.backing.write_bytes(b"old card contents" * 1000)
    before = fingerprint(tree)
    with pytest.raises(HilError, match=reason):
        flash_card(image, tree.locator(READER), Path(device), max_bytes=max_bytes, device_type=device_type)
    assert fingerprint(tree) == before


def test_flash_card_writes_the_rigs_card(tree: FakeBlockTree, image: Path) -> None:
    report = flash_card(
        image, tree.locator(READER), Path("/dev/sda"), max_bytes=32 * GIB, device_type="raspberrypi4-64"
    )
    assert report.verified
    with open(tree.disks["sda"].backing, "rb") as card:
        assert card.read(image.stat().st_size) == image.read_bytes()
