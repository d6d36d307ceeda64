"""The twin rig wires the unchanged autohat drivers to a card file and a QEMU board, and keeps the
hardware's rules: the host sees the card only through the mux, and never writes a card in use."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.drivers.twin import TwinBoard
from hil.dut.boards import config_place
from hil.errors import ImageError
from hil.images.partitions import boot_partition
from hil.lab.pool import HalfWrittenCard, health_dir
from hil.lab.rig import Rig, load_rig
from tests.support.e2e import reference_disk

TWIN_YAML = (Path(__file__).resolve().parents[2] / "rigs" / "twin-x86_64.yaml").read_text()


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[TwinBoard]:
    """A twin of its own (its own name, so its own card in the cache), removed afterwards."""
    path = tmp_path / f"twin-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(TWIN_YAML)
    rig: Rig = load_rig(path)
    ssh_port = rig.profile.ssh.port
    board = TwinBoard(
        rig.name,
        rig.spec.to_wiring(),
        tmp_path / "board",
        tmp_path / "art",
        ssh_port,
        HalfWrittenCard(rig.name),
        config_place(rig.profile),
    )
    yield board
    board.close()
    shutil.rmtree(board.card_file.parent)
    (health_dir() / f"{rig.name}.json").unlink(missing_ok=True)  # each flash records the card's state


def test_the_host_sees_the_card_only_while_the_mux_gives_it_to_the_host(twin: TwinBoard) -> None:
    twin.mux.to_dut()
    assert twin.mux.card.find() is None
    card = twin.mux.to_host(timeout=5)
    assert card.size_bytes == 2**30
    twin.mux.to_dut()
    assert twin.mux.card.find() is None


def test_flashing_writes_the_image_and_its_config_onto_the_card(twin: TwinBoard) -> None:
    disk = reference_disk()
    twin.flash(disk, {"hostname": "bench-7", "os": {"sshKeys": []}})
    with disk.open("rb") as image, twin.card_file.open("rb") as card:
        head = image.read(1 << 20)
        assert card.read(1 << 20) == head
        boot = boot_partition(head, disk)
    config = subprocess.run(["mtype", "-i", f"{twin.card_file}@@{boot.offset}", "::/config.json"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert json.loads(config)["hostname"] == "bench-7"
    assert twin.mux.state == "dut"


def test_an_image_for_another_device_type_writes_nothing(twin: TwinBoard, tmp_path: Path) -> None:
    twin.flash(reference_disk(), {})
    foreign = tmp_path / "rpi.img"
    foreign.write_bytes(bytes(4 << 20))
    (tmp_path / "rpi.img.json").write_text(json.dumps({"slug": "raspberrypi4-64", "version": "9"}))
    before = (twin.card_file.stat().st_mtime_ns, twin.card_file.read_bytes())
    with pytest.raises(ImageError, match="raspberrypi4-64"):
        twin.flash(foreign, {})
    assert (twin.card_file.stat().st_mtime_ns, twin.card_file.read_bytes()) == before


@pytest.mark.qemu
def test_pulling_the_card_from_a_running_board_cuts_its_power(twin: TwinBoard) -> None:
    twin.flash(reference_disk(), {})
    twin.power.on()
    assert twin.qemu.is_on
    twin.mux.to_host(timeout=5)
    assert not twin.qemu.is_on
    assert twin.power.state == "on"  # the relay is untouched: the board lost its card, as on the bench


@pytest.mark.qemu
def test_the_relay_starts_and_stops_the_board_with_its_console_on_a_tty(twin: TwinBoard) -> None:
    twin.flash(reference_disk(), {})
    twin.power.on()
    assert twin.qemu.is_on
    assert twin.serial_link.resolve().as_posix().startswith("/dev/pts/")
    twin.power.off()
    assert not twin.qemu.is_on
    assert not twin.serial_link.exists()


class FakeQemu:
    """Stands in for the twin's QEMU board: records starts and stops, never runs a process."""

    started: list[str] = []

    def __init__(self, name: str, *args: object, **kwargs: object) -> None:
        self.name, self.is_on, self.pty_path, self.ssh_port = name, False, Path("/dev/null"), 0

    def attach_disk(self, disk: Path | None, fmt: str = "raw") -> None:
        pass

    def power_on(self, deadline: float) -> None:
        self.is_on = True
        FakeQemu.started.append(self.name)

    def power_off(self, grace: float = 10.0) -> None:
        self.is_on = False

    def close(self) -> None:
        self.is_on = False


@pytest.fixture
def open_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Open the same twin as successive hil commands would, each a new TwinBoard on a fake QEMU."""
    monkeypatch.setattr("hil.drivers.twin.QemuBoard", FakeQemu)
    FakeQemu.started = []
    path = tmp_path / f"twin-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(TWIN_YAML)
    rig = load_rig(path)
    boards: list[TwinBoard] = []

    def open_board() -> TwinBoard:
        n = len(boards)
        boards.append(
            TwinBoard(
                rig.name,
                rig.spec.to_wiring(),
                tmp_path / f"board{n}",
                tmp_path / "art",
                22,
                HalfWrittenCard(rig.name),
                config_place(rig.profile),
            )
        )
        return boards[-1]

    yield open_board
    for board in boards:
        board.close()
    shutil.rmtree(boards[0].card_file.parent)


def test_power_on_outlives_the_command_but_its_board_stops_with_it(open_twin) -> None:
    command = open_twin()
    command.power.on()
    assert command.qemu.is_on
    command.close()  # the command ends
    assert not command.qemu.is_on  # no QEMU is left behind
    assert json.loads(command.relay_record.read_text())["state"] == "on"


def test_the_next_process_finds_the_relay_closed_and_starts_the_board(open_twin) -> None:
    first = open_twin()
    first.power.on()
    first.close()
    FakeQemu.started.clear()
    later = open_twin()  # `hil rig console`, a test session, a command inside `hil rig hold`
    assert (later.power.state, later.qemu.is_on, FakeQemu.started) == ("on", True, [later.qemu.name])
    assert later.serial_link.is_symlink()
    later.power.off()
    later.close()
    assert not open_twin().qemu.is_on  # off stays off


def test_a_twin_never_powered_starts_with_its_board_off(open_twin) -> None:
    assert (open_twin().qemu.is_on, FakeQemu.started) == (False, [])
