"""The snapshot cache behind `Dut.fresh`, in seconds instead of QEMU boots: what names a booted DUT, at most
three kept with the least recently used going first, and when a fresh DUT is restored rather than booted.
The cache alone runs against a board that keeps a dict; `Dut.fresh` runs on the fake board, which keeps
snapshots, serves a console and SSH, and restores a DUT with the host key its boot showed."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.dut import Dut
from hil.dut.machine import State
from hil.dut.snapshots import KEEP, SavedBoot, SnapshotCache, snapshot_key
from hil.errors import DutBroken, HilError, QemuError
from hil.lab.rig import load_rig
from tests.support.disk_images import make_disk
from tests.support.fakes.board import SnapshotBoard

SHA = "ab" * 32


class KeptSnapshots:
    """A board's snapshots as a dict: it keeps all it is given, unless a test says otherwise."""

    def __init__(self, refuses: str | None = None) -> None:
        self.kept: set[str] = set()
        self.refuses = refuses
        self.asked = 0

    def save_snapshot(self, key: str) -> None:
        self.asked += 1
        if self.refuses:
            raise QemuError(self.refuses)
        self.kept.add(key)

    def has_snapshot(self, key: str) -> bool:
        return key in self.kept

    def restore_snapshot(self, key: str, deadline: float) -> None:
        assert key in self.kept


def _boot(n: int) -> SavedBoot:
    return SavedBoot(Path(f"/images/{n}.img"), {"hostname": f"hil-{n}"}, "image", None)


def _alive() -> str | None:
    return None


# --- the cache -----------------------------------------------------------------------------------------


def test_a_booted_dut_is_named_by_its_image_content_its_os_profile_and_its_whole_config() -> None:
    config = {"hostname": "hil-1", "os": {"sshKeys": ["ssh-ed25519 AAAA hil"]}}
    key = snapshot_key(SHA, "reference", config)
    assert key == snapshot_key(SHA, "reference", dict(reversed(config.items())))  # order is no difference
    assert key != snapshot_key("cd" * 32, "reference", config)
    assert key != snapshot_key(SHA, "balenaos", config)
    assert key != snapshot_key(SHA, "reference", {**config, "os": {"sshKeys": []}})


def test_the_key_reads_the_image_content_not_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image: Path
) -> None:
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    cache = SnapshotCache("fake", KeptSnapshots())
    copy = shutil.copyfile(image, tmp_path / "copy.img")
    other = _image(tmp_path / "other.img", "2.0.0")
    assert cache.key(copy, "reference", {}) == cache.key(image, "reference", {})
    assert cache.key(other, "reference", {}) != cache.key(image, "reference", {})


def test_at_most_three_are_kept_and_the_least_recently_used_goes_first() -> None:
    board = KeptSnapshots()
    cache = SnapshotCache("fake", board)
    assert KEEP == 3
    for n in (1, 2, 3):
        cache.save(f"k{n}", _boot(n), _alive)
    assert cache.recall("k1") == _boot(1)  # k1 is now the most recently used: k2 is the oldest
    cache.save("k4", _boot(4), _alive)
    assert cache.keys == ["k3", "k1", "k4"]
    assert cache.recall("k2") is None  # the board still has it, but hil no longer knows that DUT
    assert [cache.recall(k) for k in ("k1", "k3", "k4")] == [_boot(1), _boot(3), _boot(4)]


def test_a_snapshot_the_board_no_longer_keeps_is_forgotten() -> None:
    board = KeptSnapshots()
    cache = SnapshotCache("fake", board)
    cache.save("k1", _boot(1), _alive)
    board.kept.clear()
    assert cache.recall("k1") is None and cache.keys == []


def test_a_board_that_cannot_save_is_asked_once_and_then_never() -> None:
    board = KeptSnapshots(refuses="Device 'pflash1' is writable but does not support snapshots")
    cache = SnapshotCache("fake", board)
    assert cache.saving
    cache.save("k1", _boot(1), _alive)
    cache.save("k2", _boot(2), _alive)
    assert board.asked == 1 and not cache.saving
    assert cache.off == "Device 'pflash1' is writable but does not support snapshots"
    assert cache.recall("k1") is None


def test_a_board_that_died_while_saving_is_an_error_not_a_board_without_snapshots() -> None:
    cache = SnapshotCache("fake", KeptSnapshots(refuses="QMP connection closed"))
    with pytest.raises(QemuError, match="QMP connection closed"):
        cache.save("k1", _boot(1), lambda: "QEMU was killed (signal 9)")
    assert cache.saving  # hil tries again on the next fresh DUT


def test_a_board_without_snapshots_saves_nothing() -> None:
    cache = SnapshotCache("fake", None)
    assert not cache.saving and cache.off == "the board keeps no snapshots"
    cache.save("k1", _boot(1), _alive)
    assert cache.recall("k1") is None


# --- Dut.fresh on the fake board ------------------------------------------------------------------------


def _image(path: Path, version: str = "1.0.0") -> Path:
    manifest = json.dumps({"slug": "qemux86-64", "version": version}).encode()
    return make_disk(path, boot_files={"device-type.json": manifest})


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return _image(tmp_path / "os.img")


class ReferenceOs:
    """What the fake DUT's SSH server answers for the reference profile's commands; keeps the clock set."""

    def __init__(self) -> None:
        self.clock: list[int] = []

    def __call__(self, command: str) -> tuple[str, int] | None:
        if command.startswith("date -u -s @"):
            self.clock.append(int(command.split("@")[1].split()[0]))
            return "", 0
        return ("1.0.0\n", 0) if "VERSION_ID" in command else None


def _dut(tmp_path: Path, board: SnapshotBoard) -> Dut:
    rig = tmp_path / "fake.yaml"
    rig.write_text(
        "kind: qemu\ndevice_type: qemux86-64\nos: reference\n"
        "timeouts:\n  boot: 20\n  ssh: 10\n  command: 10\n  shutdown: 1\n"
    )
    return Dut(load_rig(rig), board, tmp_path / "art")


@pytest.fixture
def os_answers() -> ReferenceOs:
    return ReferenceOs()


@pytest.fixture
def board(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, os_answers: ReferenceOs
) -> Iterator[SnapshotBoard]:
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    fake = SnapshotBoard(tmp_path / "board", password="", answer=os_answers)
    yield fake
    fake.close()


def test_the_first_fresh_dut_boots_and_is_saved_and_the_next_is_restored_not_booted(
    tmp_path: Path, image: Path, board: SnapshotBoard, os_answers: ReferenceOs
) -> None:
    dut = _dut(tmp_path, board)
    dut.fresh(image)
    assert board.power_ons == 1 and len(dut.boots) == 1 and len(board.saves) == 1
    assert dut.state == State.READY  # the save closed SSH; the DUT is handed over with it open again
    host_key, config, saved_at = dut.ssh.host_key, dut.config, time.time()
    dut.flash(_image(tmp_path / "other.img", "2.0.0"))  # a test leaves the DUT in another state

    dut.fresh(image)
    assert board.power_ons == 1 and len(dut.boots) == 1, "the second fresh DUT booted"
    assert board.restored == board.saves and len(dut.restores) == 1
    assert dut.state == State.READY and dut.image == image and dut.config == config
    assert dut.ssh.host_key == host_key  # pinned again, as the snapshot's boot showed it
    assert os_answers.clock and os_answers.clock[-1] >= int(saved_at)  # the clock set to now, whole seconds
    assert dut.run("echo restored").output == "restored\n"
    assert dut.console_run("echo console").output.strip() == "console"


def test_another_config_or_image_boots_and_the_same_content_elsewhere_is_restored(
    tmp_path: Path, image: Path, board: SnapshotBoard
) -> None:
    dut = _dut(tmp_path, board)
    dut.fresh(image, {"myFeature": {"on": True}})
    dut.fresh(image, {"myFeature": {"on": False}})
    dut.fresh(_image(tmp_path / "v2.img", "2.0.0"), {"myFeature": {"on": True}})
    assert board.power_ons == 3 and board.restored == []
    dut.fresh(shutil.copyfile(image, tmp_path / "copy.img"), {"myFeature": {"on": True}})
    assert board.power_ons == 3 and board.restored == [board.saves[0]]
    assert dut.config["myFeature"] == {"on": True}


def test_the_oldest_of_three_is_forgotten_and_its_dut_boots_again(
    tmp_path: Path, image: Path, board: SnapshotBoard
) -> None:
    board.keep = 10  # the board would keep more: hil's own bound is what forgets
    dut = _dut(tmp_path, board)
    for n in range(4):
        dut.fresh(image, {"n": n})
    assert board.power_ons == 4
    dut.fresh(image, {"n": 3})
    assert board.power_ons == 4 and len(board.restored) == 1
    dut.fresh(image, {"n": 0})
    assert board.power_ons == 5 and len(board.restored) == 1


def test_a_snapshot_the_board_dropped_boots_and_is_saved_again(
    tmp_path: Path, image: Path, board: SnapshotBoard
) -> None:
    board.keep = 1
    dut = _dut(tmp_path, board)
    dut.fresh(image, {"n": 0})
    dut.fresh(image, {"n": 1})  # the board keeps only this one now
    dut.fresh(image, {"n": 0})
    assert board.power_ons == 3 and board.restored == [] and len(board.saves) == 3


def test_a_broken_dut_is_flashed_and_booted_not_restored(
    tmp_path: Path, image: Path, board: SnapshotBoard
) -> None:
    dut = _dut(tmp_path, board)
    dut.fresh(image)
    board.boots = False
    with pytest.raises(HilError, match="does not boot"):
        dut.power_cycle(0)
    with pytest.raises(DutBroken):
        dut.transition(State.READY)
    board.boots = True
    dut.fresh(image)  # a reflash recovers a DUT whose image had booted
    assert board.restored == [] and board.power_ons == 3 and dut.state == State.READY


def test_a_board_that_cannot_save_warns_once_and_every_fresh_dut_boots(
    tmp_path: Path, image: Path, board: SnapshotBoard, caplog: pytest.LogCaptureFixture
) -> None:
    board.refuses = "Device 'pflash1' is writable but does not support snapshots"
    dut = _dut(tmp_path, board)
    dut.fresh(image)
    dut.fresh(image)
    assert board.power_ons == 2 and len(board.saves) == 1 and dut.state == State.READY
    assert [r.message for r in caplog.records if "no snapshots on this board" in r.message] == [
        "fake: no snapshots on this board, every fresh DUT boots: QEMU could not save a snapshot of fake: "
        "Device 'pflash1' is writable but does not support snapshots"
    ]


def test_a_board_that_died_while_saving_names_its_death(
    tmp_path: Path, image: Path, board: SnapshotBoard
) -> None:
    dut = _dut(tmp_path, board)
    board.died = "QEMU was killed (signal 9)"  # the fake boots on; its savevm meets the dead process
    with pytest.raises(QemuError, match="signal 9"):
        dut.fresh(image)
    assert dut.snapshots.saving  # not taken for a board without snapshots
