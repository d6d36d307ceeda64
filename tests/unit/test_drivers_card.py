"""Card identity: the rig's card is found by its reader's USB identity, and every other disk is refused."""

from __future__ import annotations

import json
import lzma
import os
import stat
import subprocess
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hil.drivers import flasher
from hil.drivers.card import CardIdentity, CardLocator, block_device_number
from hil.drivers.config_json import ConfigPlace, write_config_json
from hil.drivers.fake_sysfs import FakeBlockTree
from hil.drivers.flasher import flash_card
from hil.errors import FlashError, HilError, RigConfigError
from tests.support.disk_images import make_disk

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


def swap_node_after(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, swap: Callable[[], None]
) -> None:
    """Run `swap` right after `owner.name` returns: the card is pulled (or its node reused) at that moment."""
    original = getattr(owner, name)

    def then_swap(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        swap()
        return result

    monkeypatch.setattr(owner, name, then_swap)


def repoint(tree: FakeBlockTree, target: Path | None) -> Callable[[], None]:
    """A swap: /dev/sda vanishes, or comes back pointing at `target`."""

    def swap() -> None:
        (tree.dev / "sda").unlink()
        if target is not None:
            (tree.dev / "sda").symlink_to(target)

    return swap


@pytest.mark.parametrize(
    ("replacement", "found"),
    [
        (None, r"it is gone \(card pulled\?\); nothing written"),
        ("sdb", r"expected block device 8:16 \(sda\), found block device 8:32; nothing more written"),
        ("plain file", r"expected block device 8:16 \(sda\), found a regular file; nothing more written"),
    ],
)
def test_a_card_node_that_vanishes_or_changes_after_the_check_gets_nothing_written(
    tree: FakeBlockTree,
    image: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    replacement: str | None,
    found: str,
) -> None:
    plain = tmp_path / "devtmpfs-ram"
    plain.write_bytes(b"not a card" * 1000)
    target = {None: None, "sdb": tree.disks["sdb"].backing, "plain file": plain}[replacement]
    for disk in tree.disks.values():
        disk.backing.write_bytes(b"old card contents" * 1000)
    before = fingerprint(tree), plain.read_bytes()
    swap_node_after(monkeypatch, CardLocator, "check_writable", repoint(tree, target))
    with pytest.raises(FlashError, match=rf"^refusing to flash {tree.dev}/sda: {found}$"):
        flash_card(
            image, tree.locator(READER), Path("/dev/sda"), max_bytes=32 * GIB, device_type="raspberrypi4-64"
        )
    assert (fingerprint(tree), plain.read_bytes()) == before
    assert os.path.lexists(tree.dev / "sda") == (replacement is not None)  # never created as a file


def test_the_card_is_checked_again_before_it_is_read_back(
    tree: FakeBlockTree, image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    swap_node_after(monkeypatch, flasher, "write_image", repoint(tree, tree.disks["sdb"].backing))
    with pytest.raises(FlashError, match=r"expected block device 8:16 \(sda\), found block device 8:32"):
        flash_card(
            image, tree.locator(READER), Path("/dev/sda"), max_bytes=32 * GIB, device_type="raspberrypi4-64"
        )


def test_config_json_goes_only_to_the_checked_card(tree: FakeBlockTree, image: Path) -> None:
    locator = tree.locator(READER)
    card = locator.check_writable(Path("/dev/sda"), max_bytes=32 * GIB)
    tree.disks["sdb"].backing.write_bytes(
        image.read_bytes()
    )  # a disk with a boot partition mcopy could write
    before = fingerprint(tree)
    repoint(tree, tree.disks["sdb"].backing)()
    with pytest.raises(FlashError, match=r"expected block device 8:16 \(sda\), found block device 8:32"):
        write_config_json(
            card.device,
            {"hostname": "x"},
            ConfigPlace(),
            target_check=lambda fd: locator.check_node(card, fd),
        )
    assert fingerprint(tree) == before


def test_the_real_check_reads_the_device_number_from_the_opened_descriptor(
    tree: FakeBlockTree, tmp_path: Path
) -> None:
    locator = CardLocator(READER, sysfs_root=tree.sysfs, dev_root=tree.dev, mountinfo=tree.mountinfo)
    card = locator.find()
    assert card is not None and card.dev == "8:16"
    node = tmp_path / "sda-node"
    try:
        os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(8, 16))
    except PermissionError:
        pytest.skip("making a block device node needs root")
    # O_PATH: a descriptor fstat can judge, without opening (or touching) any real device.
    for number, verdict in ((os.makedev(8, 16), None), (os.makedev(8, 32), "found block device 8:32")):
        node.unlink(missing_ok=True)
        os.mknod(node, stat.S_IFBLK | 0o600, number)
        fd = os.open(node, os.O_PATH)
        try:
            if verdict is None:
                locator.check_node(card, fd)
            else:
                with pytest.raises(FlashError, match=verdict):
                    locator.check_node(card, fd)
        finally:
            os.close(fd)
    fd = os.open(tree.disks["sda"].backing, os.O_RDONLY)  # the fake's node: a plain file, refused for real
    try:
        with pytest.raises(FlashError, match=r"expected block device 8:16 \(sda\), found a regular file"):
            locator.check_node(card, fd)
    finally:
        os.close(fd)
    assert block_device_number(os.stat("/dev/null")) is None


def truncated_xz(image: Path) -> Path:
    packed = image.with_name("os.img.xz")
    packed.write_bytes(lzma.compress(image.read_bytes(), preset=0)[:-2000])
    return packed


def two_image_zip(image: Path) -> Path:
    packed = image.with_name("os.zip")
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("a.img", image.read_bytes())
        archive.writestr("b.img", image.read_bytes())
    return packed


def not_a_disk(image: Path) -> Path:
    blob = image.with_name("blob.img")
    blob.write_bytes(bytes(1 << 20))
    blob.with_name("blob.img.json").write_text(json.dumps({"slug": "raspberrypi4-64"}))
    return blob


def empty(image: Path) -> Path:
    blank = image.with_name("blank.img")
    blank.write_bytes(b"")
    return blank


def bmap_of_another_size(image: Path) -> Path:
    bmap = image.with_name("os.img.bmap")
    subprocess.run(["bmaptool", "create", "-o", str(bmap), str(image)], check=True, capture_output=True)
    with open(image, "ab") as f:
        f.write(bytes(4096))
    return image


def bmap_of_other_contents(image: Path) -> Path:
    bmap = image.with_name("os.img.bmap")
    subprocess.run(["bmaptool", "create", "-o", str(bmap), str(image)], check=True, capture_output=True)
    with open(image, "r+b") as f:
        f.seek((6 << 20) + 100)  # inside the data of the second partition
        f.write(b"changed")
    return image


@pytest.mark.parametrize(
    ("broken", "refusal"),
    [
        (empty, "is empty"),
        (truncated_xz, r"is corrupt: no valid xz stream footer \(truncated\?\)"),
        (two_image_zip, r"must hold exactly one image; it holds \['a.img', 'b.img'\]"),
        (not_a_disk, "has no FAT boot partition in its partition table"),
        (bmap_of_another_size, r"bmap .*os\.img\.bmap describes a \d+-byte image; image .* holds \d+ bytes"),
        (
            bmap_of_other_contents,
            r"image .*os\.img is corrupt: bytes \d+\+\d+ do not match its bmap os\.img\.bmap",
        ),
    ],
)
def test_a_broken_image_is_refused_in_one_line_before_the_card_is_touched(
    tree: FakeBlockTree, image: Path, broken: Callable[[Path], Path], refusal: str
) -> None:
    for disk in tree.disks.values():
        disk.backing.write_bytes(b"old card contents" * 1000)
    before = fingerprint(tree)
    with pytest.raises(HilError, match=refusal) as refused:
        flash_card(
            broken(image), tree.locator(READER), Path("/dev/sda"), max_bytes=32 * GIB,
            device_type="raspberrypi4-64", before_write=lambda: pytest.fail("began writing"),
        )  # fmt: skip
    assert "\n" not in str(refused.value)
    assert fingerprint(tree) == before
