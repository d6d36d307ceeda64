"""Flasher images on a virtual board: the rig's internal disk, how hil knows a flasher, and the install
(boot the installer, wait for its power-off, eject it, boot the internal disk), on small real disk images
and the fake QEMU host of test_qemu_process (no QEMU runs)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import hil.drivers.qemu.board as board_module
from hil.drivers.config_json import ConfigPlace
from hil.drivers.qemu import flash
from hil.drivers.qemu.board import QemuBoard
from hil.drivers.qemu.disks import DiskSets
from hil.drivers.qemu.machine import Machine
from hil.drivers.qemu.process import State
from hil.errors import ImageError, QemuError, RigConfigError
from hil.images import edit
from hil.images.builders import disk
from hil.images.builders.reference import FLASHER_MARKER
from hil.images.partitions import Partition
from hil.lab.rig import load_rig
from hil.util.workdir import make_workdir
from tests.support.fakes.qemu_host import Host, in_thread, install, new_root, until

GIB = 1 << 30
PLACE = ConfigPlace(1, "/config.json")  # the reference profile's: config.json on partition 1
LAYOUT = (disk.Partition("boot", disk.ESP_TYPE, 2),)


def _image(tmp: Path, name: str, *, flasher: bool) -> Path:
    """A tiny GPT disk whose FAT boot partition holds config.json, and the marker if `flasher`."""
    files = {"config.json": tmp / "default.json"}
    files["config.json"].write_text('{"hostname": "built-in"}\n')
    if flasher:
        (tmp / FLASHER_MARKER).write_bytes(b"")
        files[FLASHER_MARKER] = tmp / FLASHER_MARKER
    boot = tmp / f"{name}.boot"
    disk.mkfs_vfat(boot, 2, "boot", files)
    image = tmp / f"{name}.img"
    disk.assemble(image, {"boot": boot}, LAYOUT)
    return image


@pytest.fixture
def flasher_image(tmp_path: Path) -> Path:
    return _image(tmp_path, "flasher", flasher=True)


@pytest.fixture
def plain_image(tmp_path: Path) -> Path:
    return _image(tmp_path, "plain", flasher=False)


def _virtual_size(qcow2: Path) -> int:
    info = subprocess.run(["qemu-img", "info", "--output=json", str(qcow2)], capture_output=True, check=True)
    return int(json.loads(info.stdout)["virtual-size"])


# --- the rig file -------------------------------------------------------------------------------------


def _rig(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return path


def test_a_rig_states_its_boards_internal_disk_and_the_install_bound(tmp_path: Path) -> None:
    text = "kind: qemu\ndevice_type: qemux86-64\nqemu:\n  internal_disk: 8GiB\ntimeouts:\n  install: 300\n"
    rig = load_rig(_rig(tmp_path, text))
    assert rig.spec.qemu.to_machine().internal_disk == 8 * GIB
    assert rig.spec.timeouts.install == 300
    plain = load_rig(_rig(tmp_path, "kind: qemu\ndevice_type: qemux86-64\nqemu:\n  internal_disk: null\n"))
    assert plain.spec.qemu.to_machine().internal_disk is None and plain.spec.timeouts.install == 600


@pytest.mark.parametrize(
    ("value", "problem"),
    [("0", "holds no OS; give a size such as 8GiB"), ("lots", "could not parse value and unit")],
)
def test_an_internal_disk_that_cannot_be_is_refused_at_its_line(
    tmp_path: Path, value: str, problem: str
) -> None:
    path = _rig(tmp_path, f"kind: qemu\ndevice_type: qemux86-64\nqemu:\n  internal_disk: {value}\n")
    with pytest.raises(RigConfigError) as refused:
        load_rig(path)
    assert str(refused.value).startswith(f"{path}:4: qemu.internal_disk: ")
    assert problem in str(refused.value)


def test_a_twin_boots_its_card_and_takes_no_internal_disk(tmp_path: Path) -> None:
    path = _rig(
        tmp_path,
        "kind: twin\ndevice_type: qemux86-64\nqemu:\n  internal_disk: 8GiB\npower: {pin: 17}\n"
        "sd_mux: {type: gpio, pin: 27}\ncard: {serial: TWIN1, max_size: 1GB}\n",
    )
    with pytest.raises(RigConfigError, match=r":3: qemu: .*a twin boots its card: internal_disk is for qemu"):
        load_rig(path)


# --- what a flash puts on the board -------------------------------------------------------------------


def test_the_builders_marker_is_the_one_the_board_looks_for() -> None:
    assert flash.MARKER == f"/{FLASHER_MARKER}" == "/balena-image-flasher"  # meta-balena's flag file


def test_a_flasher_is_known_by_the_marker_on_its_boot_partition(
    flasher_image: Path, plain_image: Path
) -> None:
    assert flash.is_flasher(flasher_image, PLACE) and flash.is_flasher(flasher_image, None)
    assert not flash.is_flasher(plain_image, PLACE)
    assert not flash.is_flasher(flasher_image, ConfigPlace(3)), "a partition the disk lacks holds no marker"


def test_a_flasher_on_a_board_without_an_internal_disk_is_refused_in_one_line(
    flasher_image: Path, tmp_path: Path
) -> None:
    sets = DiskSets(tmp_path / "board", tmp_path / "vars")
    with pytest.raises(RigConfigError) as refused:
        flash.prepare(sets, "q", flasher_image, {}, PLACE, None)
    assert str(refused.value) == (
        "flasher.img is a flasher image (/balena-image-flasher on its boot partition): it installs onto an "
        "internal disk, and board q has none; give its rig one (qemu: internal_disk: 8GiB)"
    )
    assert not (tmp_path / "board").exists(), "a refused flash made disks"


def test_a_flasher_gets_an_empty_internal_disk_and_its_installer_hils_config(
    flasher_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DiskSets, "new_root", new_root)
    sets = DiskSets(tmp_path / "board", tmp_path / "vars")
    made = flash.prepare(sets, "q", flasher_image, {"hostname": "from-hil"}, PLACE, 8 * GIB)
    assert made.internal and made.installer is not None and made.disk is not None
    assert json.loads(edit.read_file(made.installer, 1, "/config.json")) == {"hostname": "from-hil"}
    assert _virtual_size(made.disk) == 8 * GIB and edit.partitions_of(made.disk) == []
    assert json.loads(edit.read_file(flasher_image, 1, "/config.json")) == {"hostname": "built-in"}


def test_any_other_image_is_written_onto_the_internal_disk(
    plain_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DiskSets, "new_root", new_root)
    sets = DiskSets(tmp_path / "board", tmp_path / "vars")
    made = flash.prepare(sets, "q", plain_image, {"hostname": "from-hil"}, PLACE, 8 * GIB)
    assert made.internal and made.installer is None and made.disk is not None
    assert _virtual_size(made.disk) == 8 * GIB
    assert json.loads(edit.read_file(made.disk, 1, "/config.json")) == {"hostname": "from-hil"}
    alone = flash.prepare(sets, "q", plain_image, {}, PLACE, None)
    assert not alone.internal and alone.disk is not None
    assert _virtual_size(alone.disk) == plain_image.stat().st_size


def test_an_image_larger_than_the_internal_disk_is_refused(
    plain_image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DiskSets, "new_root", new_root)
    sets = DiskSets(tmp_path / "board", tmp_path / "vars")
    with pytest.raises(ImageError) as refused:
        flash.prepare(sets, "q", plain_image, {}, PLACE, 2 << 20)
    assert str(refused.value) == "plain.img (4 MiB) does not fit board q's internal disk (2 MiB)"


# --- the install, on a fake QEMU host ------------------------------------------------------------------


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> Host:
    """QEMU and its monitor faked; qemu-img, mtools and the disk images real."""
    return install(monkeypatch)


@pytest.fixture
def make_board(host: Host, tmp_path: Path) -> Iterator[Callable[..., QemuBoard]]:
    boards: list[QemuBoard] = []

    def make(install_timeout: float = 5.0) -> QemuBoard:
        machine = Machine(accel="tcg", internal_disk=8 * GIB)
        board = QemuBoard("q", machine, make_workdir("q"), tmp_path / "art", 22, config_place=PLACE,
                          install_timeout=install_timeout)  # fmt: skip
        boards.append(board)
        return board

    yield make
    for board in boards:
        board.close()
    assert all(p.returncode is not None for p in host.processes), "a QEMU process was left running"


def _installs(monkeypatch: pytest.MonkeyPatch, written: bool = True) -> None:
    """What the installer leaves on the internal disk: a partition table, or nothing."""
    table = [Partition(1, 1 << 20, 2 << 20, True)] if written else []
    monkeypatch.setattr(board_module, "partitions_of", lambda disk: table)


def _flash_in_thread(board: QemuBoard, image: Path) -> tuple[Callable[[], object], list[object]]:
    thread, outcome = in_thread(lambda: board.flash(image, {"hostname": "from-hil"}))

    def done() -> object:
        thread.join(5)
        assert not thread.is_alive(), "the flash never ended"
        return outcome[0]

    return done, outcome


def test_a_flasher_installs_then_the_board_boots_its_internal_disk_alone(
    make_board: Callable[..., QemuBoard], host: Host, flasher_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _installs(monkeypatch)
    board = make_board()
    done, _ = _flash_in_thread(board, flasher_image)
    until(lambda: len(host.links) == 1)
    installing = host.commands[0]
    assert "virtio-blk-pci,drive=installer,bootindex=0" in installing
    assert "virtio-blk-pci,drive=internal,bootindex=1" in installing
    assert installing.index("virtio-net-pci") < installing.index("drive=internal"), "the disks moved slots"
    assert board.is_on
    host.links[0].guest("guest-shutdown")  # the installer wrote the internal disk and powered off
    assert done() is None
    disks = board._disks.current
    assert disks is not None and disks.installer is None and disks.disk is not None
    assert disks.disk.name == "internal.qcow2" and not (disks.root / "disk.qcow2").exists()
    assert board.state is State.OFF and board.exit_reason() is None
    board.power_on(time.monotonic() + 5)  # as the Dut does after any flash
    booting = host.commands[1]
    assert "drive=installer" not in booting and "virtio-blk-pci,drive=internal,bootindex=1" in booting
    assert f"file={disks.disk}" in booting
    host.links[1].guest("guest-shutdown")  # the installed OS powering off is a death again
    until(lambda: board.state is State.DEAD)


def test_a_flasher_that_never_powers_off_ends_in_one_line_naming_the_console_log_and_leaves_nothing(
    make_board: Callable[..., QemuBoard], host: Host, flasher_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _installs(monkeypatch)
    board = make_board(install_timeout=0.3)
    board.serial_log.write_bytes(b"hil-flasher: failed: no internal disk\r\nhil-flasher: stays on\r\n")
    with pytest.raises(QemuError) as failed:
        board.flash(flasher_image, {"hostname": "from-hil"})
    assert str(failed.value) == (
        "flasher image flasher.img did not install on board q: it did not power itself off within 0.3 s; its "
        "console last printed: hil-flasher: failed: no internal disk | hil-flasher: stays on "
        f"(console log: {board.serial_log})"
    )
    assert [p.returncode for p in host.processes] == [0], "QEMU was left running"
    assert list(board.workdir.glob("disks-*")) == [], "the installer or the internal disk was left behind"
    with pytest.raises(QemuError, match="has no image; flash it first"):
        board.power_on(time.monotonic() + 5)


def test_a_flasher_that_crashes_is_named_with_the_console_log(
    make_board: Callable[..., QemuBoard], host: Host, flasher_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _installs(monkeypatch)
    board = make_board()
    done, _ = _flash_in_thread(board, flasher_image)
    until(lambda: len(host.links) == 1)
    host.processes[0].exit(-11)
    failed = done()
    assert isinstance(failed, QemuError)
    assert str(failed) == (
        "flasher image flasher.img did not install on board q: it did not power off as expected: QEMU exited "
        f"unexpectedly (killed by signal 11) (log: {board.stderr_log}) (console log: {board.serial_log})"
    )
    assert list(board.workdir.glob("disks-*")) == []


def test_a_flasher_that_powers_off_without_installing_is_named(
    make_board: Callable[..., QemuBoard], host: Host, flasher_image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _installs(monkeypatch, written=False)
    board = make_board()
    done, _ = _flash_in_thread(board, flasher_image)
    until(lambda: len(host.links) == 1)
    host.links[0].guest("guest-shutdown")
    failed = done()
    assert isinstance(failed, QemuError)
    assert str(failed) == (
        "flasher image flasher.img did not install on board q: it powered off with no partition table on "
        f"the internal disk (console log: {board.serial_log})"
    )
    assert board.state is State.OFF and list(board.workdir.glob("disks-*")) == []


def test_a_plain_image_on_a_board_with_an_internal_disk_boots_at_once(
    make_board: Callable[..., QemuBoard], host: Host, plain_image: Path
) -> None:
    board = make_board()
    board.flash(plain_image, {"hostname": "from-hil"})
    assert host.commands == [], "a plain image started QEMU to install"
    board.power_on(time.monotonic() + 5)
    assert "virtio-blk-pci,drive=internal,bootindex=1" in host.commands[0]
    assert "installer" not in host.commands[0]
