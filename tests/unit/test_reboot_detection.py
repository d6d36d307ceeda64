"""Seeing a reboot without the kernel's restart line, in seconds on the fake board: production balenaOS
boots `console=null quiet`, so its console says nothing while it reboots. A restart shows on the console,
in the board's count of boots, or as a new boot id over SSH, whichever comes first; through a trial boot
that reboots by itself, twice; a login is never taken from the shell that went down; a DUT that does not
restart is one line naming the bound, what was watched and the transcript. The quiet reference image
keeps the kernel off the serial line and the login on it."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.capabilities import BootCounter
from hil.console.unix_socket import UnixSocketTransport
from hil.dut import Dut
from hil.dut import login as login_module
from hil.dut.machine import State
from hil.errors import BootTimeout
from hil.images.arch import ARCHES
from hil.images.builders.disk import partition_table
from hil.images.builders.reference import QUIET_KERNEL_CONSOLE, build_reference, grub_cfg
from hil.lab.rig import load_rig
from tests.support.disk_images import make_disk
from tests.support.fakes.board import FakeBoard
from tests.support.fakes.console_dut import FakeDut
from tests.support.fakes.ssh_server import FakeSshServer

BOOT_ID = "/proc/sys/kernel/random/boot_id"
RESTART_LINE = "[   42.000000] reboot: Restarting system"  # the kernel's last words before a reset


class RebootingBoard(FakeBoard):
    """A fake board whose DUT can reboot: its console hangs up and comes back on the same socket (as the
    QEMU board's does, by a new process) with a getty, SSH answers from the new boot, and every boot has
    its own boot id. After a restart, `slow` seconds pass before the DUT prints anything."""

    def __init__(self, workdir: Path, *, slow: float = 0.0) -> None:
        super().__init__(workdir, password="", ssh=True, answer=_reference_os)
        self.slow = slow
        self.boot_ids: list[str] = []
        self.count = 0  # boots started: power-ons and restarts
        self._restarting = False
        self._changed = threading.Condition()

    def _serve(self, config: dict[str, Any], *, logged_in: bool) -> None:
        """Serve a new boot's console and SSH, with the boot's own id."""
        boot_id = str(uuid.uuid4())
        with self._changed:  # counted as the boot starts, before it answers anything (as on QEMU)
            self.boot_ids.append(boot_id)
            self.count += 1
        path = self.workdir / "console.sock"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        delay = self.slow if self.count > 1 else 0.0
        self.console = TalkingFakeDut(path, delay, password=self.password, logged_in=logged_in)
        keys = config.get("os", {}).get("sshKeys", [])
        self.sshd = FakeSshServer(keys, host_key=self.host_key, answer=self.answer)
        self.sshd.files[BOOT_ID] = f"{boot_id}\n".encode()
        self.ssh_port = self.sshd.port

    def say(self, line: str) -> None:
        """The DUT prints `line` on its console (a kernel line, say)."""
        assert isinstance(self.console, TalkingFakeDut)
        self.console.say(line)

    def restart(self) -> None:
        """The DUT resets: console and SSH hang up, then the next boot's come up."""
        with self._changed:
            self._restarting = True
        self.power_off()
        self._serve(self.flashed[-1][1], logged_in=False)
        with self._changed:
            self._restarting = False
            self._changed.notify_all()

    def console_transport(self, timeout: float) -> UnixSocketTransport:
        """The console's socket, followed across restarts."""
        assert self.console is not None
        seen = self.count

        def follow() -> bool:
            nonlocal seen
            with self._changed:
                self._changed.wait_for(lambda: not self._restarting, timeout=10)
                if self.count == seen:
                    return False
                seen = self.count
                return True

        return UnixSocketTransport(self.console.path, timeout, follow=follow)


class CountingBoard(RebootingBoard):
    """A rebooting fake board that counts its boots, as the QEMU board does."""

    provides = (BootCounter,)

    def boots_started(self) -> int:
        """Boots started: power-ons and restarts."""
        return self.count


class TalkingFakeDut(FakeDut):
    """A fake DUT that stays silent for `delay` seconds once connected, and prints what a test says."""

    def __init__(self, path: Path, delay: float, **kwargs: Any) -> None:
        self.delay = delay
        super().__init__(path, **kwargs)

    def _serve(self) -> None:
        time.sleep(self.delay)
        super()._serve()

    def say(self, line: str) -> None:
        """Print `line` on the console."""
        self._emit(f"{line}\r\n".encode(), noisy=False)


def _reference_os(command: str) -> tuple[str, int] | None:
    return ("1.0.0\n", 0) if "VERSION_ID" in command else None


@pytest.fixture
def image(tmp_path: Path) -> Path:
    manifest = json.dumps({"slug": "qemux86-64", "version": "1.0.0"}).encode()
    return make_disk(tmp_path / "os.img", boot_files={"device-type.json": manifest})


@pytest.fixture
def booted(tmp_path: Path, image: Path) -> Iterator[Callable[[RebootingBoard], Dut]]:
    """A reference-profile DUT on `board`, booted to READY. Its reboot command only says so: the fake
    console's shell runs on this host."""
    duts: list[Dut] = []

    def boot(board: RebootingBoard) -> Dut:
        rig = tmp_path / "fake.yaml"
        rig.write_text(
            "kind: qemu\ndevice_type: qemux86-64\n"
            "os:\n  extends: reference\n  boot:\n    reboot_command: echo not rebooting the host\n"
            "timeouts:\n  boot: 20\n  ssh: 10\n  command: 10\n  shutdown: 1\n"
        )
        dut = Dut(load_rig(rig), board, tmp_path / "art")
        duts.append(dut)
        dut.flash(image)
        dut.boot()
        dut.console_run("export HIL_BOOT=old").check()
        return dut

    yield boot
    for dut in duts:
        dut.close()


def _later(seconds: float, *steps: Callable[[], None]) -> threading.Thread:
    """Run `steps` on a thread, `seconds` apart, the first after `seconds`."""

    def run() -> None:
        for step in steps:
            time.sleep(seconds)
            step()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _seen_by(caplog: pytest.LogCaptureFixture) -> list[str]:
    """How each restart was seen, as the DUT logged it."""
    said = [record.getMessage() for record in caplog.records]
    return [line.split("restart seen by the ")[1] for line in said if "restart seen by the " in line]


def _on_the_new_boot(dut: Dut, board: RebootingBoard) -> None:
    assert dut.state == State.READY
    assert dut.boot_id == board.boot_ids[-1]
    assert dut.console_run("echo ${HIL_BOOT:-new}").output.strip() == "new", "logged in to the old shell"
    assert dut.run(f"cat {BOOT_ID}").output.strip() == board.boot_ids[-1]


@pytest.fixture(autouse=True)
def _quick_boot_ids(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(login_module, "BOOT_ID_PERIOD", 0.2)
    caplog.set_level(logging.INFO, logger="hil.dut")


# --- one reboot ------------------------------------------------------------------------------------------


def test_the_dut_knows_the_id_of_the_boot_it_reached(tmp_path: Path, booted: Callable[..., Dut]) -> None:
    board = RebootingBoard(tmp_path / "board")
    dut = booted(board)
    assert dut.boot_id == board.boot_ids[0]
    dut.power_cycle(0)
    assert dut.boot_id == board.boot_ids[1] != board.boot_ids[0]


def test_the_kernels_restart_line_is_a_reboot_as_before(
    tmp_path: Path, booted: Callable[..., Dut], caplog: pytest.LogCaptureFixture
) -> None:
    board = CountingBoard(tmp_path / "board")
    dut = booted(board)
    restarting = _later(0.5, lambda: board.say(RESTART_LINE), board.restart)
    dut.wait_for_reboot("a reboot with a restart line")
    restarting.join()
    assert _seen_by(caplog) == ["console"]
    _on_the_new_boot(dut, board)


def test_a_silent_reboot_shows_in_the_boards_count_of_boots(
    tmp_path: Path, booted: Callable[..., Dut], caplog: pytest.LogCaptureFixture
) -> None:
    board = CountingBoard(tmp_path / "board")
    dut = booted(board)
    restarting = _later(0.5, board.restart)
    dut.wait_for_reboot("a silent reboot")
    restarting.join()
    assert _seen_by(caplog) == ["board"]
    _on_the_new_boot(dut, board)
    assert len(dut.boots) == 2


def test_a_silent_reboot_on_a_board_that_counts_nothing_shows_as_a_new_boot_id(
    tmp_path: Path, booted: Callable[..., Dut], caplog: pytest.LogCaptureFixture
) -> None:
    board = RebootingBoard(tmp_path / "board")
    dut = booted(board)
    restarting = _later(0.5, board.restart)
    dut.wait_for_reboot("a silent reboot")
    restarting.join()
    assert _seen_by(caplog) == ["boot id"]
    _on_the_new_boot(dut, board)


def test_a_reboot_seen_off_the_console_waits_for_the_new_boot_to_speak_before_logging_in(
    tmp_path: Path, booted: Callable[..., Dut], caplog: pytest.LogCaptureFixture
) -> None:
    # The count moves as the new boot starts; its console says nothing for a second. Until it does, the
    # console ends in the prompt of the shell that went down, and a login there would type into the boot.
    board = CountingBoard(tmp_path / "board", slow=1.0)
    dut = booted(board)
    mark = dut.console.mark() if dut.console else 0
    restarting = _later(0.3, board.restart)
    dut.wait_for_reboot("a silent reboot")
    restarting.join()
    assert _seen_by(caplog) == ["board"]
    assert dut.console is not None
    after = dut.console.text_since(mark)
    assert "Login incorrect" not in after and "Password:" in after
    _on_the_new_boot(dut, board)


# --- through a trial boot that reboots by itself ------------------------------------------------------------


def test_through_a_trial_boot_the_board_counts_two_restarts(
    tmp_path: Path, booted: Callable[..., Dut], caplog: pytest.LogCaptureFixture
) -> None:
    board = CountingBoard(tmp_path / "board")
    dut = booted(board)
    restarting = _later(0.5, board.restart, board.restart)  # the trial boot lives half a second
    dut.wait_for_reboot("a trial boot", restarts=2)
    restarting.join()
    assert _seen_by(caplog) == ["board"]
    assert len(board.boot_ids) == 3
    _on_the_new_boot(dut, board)


def test_through_a_trial_boot_a_board_that_counts_nothing_needs_a_second_new_boot_id(
    tmp_path: Path, booted: Callable[..., Dut], caplog: pytest.LogCaptureFixture
) -> None:
    board = RebootingBoard(tmp_path / "board")
    dut = booted(board)
    restarting = _later(1.5, board.restart, board.restart)  # SSH answers during the trial boot
    dut.wait_for_reboot("a trial boot", restarts=2)
    restarting.join()
    assert _seen_by(caplog) == ["boot id"]
    _on_the_new_boot(dut, board)


def test_through_a_trial_boot_two_restart_lines_are_two_restarts(
    tmp_path: Path, booted: Callable[..., Dut], caplog: pytest.LogCaptureFixture
) -> None:
    board = RebootingBoard(tmp_path / "board")
    dut = booted(board)
    restart_line = lambda: board.say(RESTART_LINE)  # noqa: E731
    restarting = _later(0.5, restart_line, board.restart, restart_line, board.restart)
    dut.wait_for_reboot("a trial boot", restarts=2)
    restarting.join()
    assert _seen_by(caplog) == ["console"]
    _on_the_new_boot(dut, board)


# --- a DUT that does not restart ----------------------------------------------------------------------------


def test_a_dut_that_does_not_restart_is_one_message_naming_the_bound_what_was_watched_and_the_console(
    tmp_path: Path, booted: Callable[..., Dut]
) -> None:
    board = CountingBoard(tmp_path / "board")
    dut = booted(board)
    with pytest.raises(BootTimeout) as timeout:
        dut.wait_for_reboot("a reboot that never happens", timeout=1.5)
    message = str(timeout.value)
    first = message.splitlines()[0]
    assert first.startswith("the DUT did not restart within 2 s after a reboot that never happens; ")
    assert (
        "watched: `reboot: Restarting system` on the console, the board's count of boots, "
        "a new boot id over SSH; transcript: " in first
    )
    assert str(dut.transcript) in first and "last console lines:" in message
    assert dut.broken is not None


def test_a_trial_boot_that_restarts_only_once_says_so(tmp_path: Path, booted: Callable[..., Dut]) -> None:
    board = CountingBoard(tmp_path / "board")
    dut = booted(board)
    restarting = _later(0.3, board.restart)
    with pytest.raises(BootTimeout, match=r"did not restart 2 times within 3 s after a trial boot "
                       r"\(it restarted 1 of those times\); watched: "):  # fmt: skip
        dut.wait_for_reboot("a trial boot", timeout=3, restarts=2)
    restarting.join()


# --- the quiet reference image ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ARCHES))
def test_the_quiet_images_kernel_has_no_console_on_the_serial_line(name: str) -> None:
    arch = ARCHES[name]
    quiet, loud = grub_cfg(arch, quiet=True), grub_cfg(arch)
    assert f'vmlinuz" {QUIET_KERNEL_CONSOLE} panic=1' in quiet and f"console={arch.console}" not in quiet
    assert f'vmlinuz" console={arch.console},115200 panic=1' in loud
    assert "@" not in quiet, "a placeholder was left unfilled"


def test_the_quiet_image_is_the_healthy_os_with_its_login_on_the_serial_line(tmp_path: Path) -> None:
    image = build_reference("1.0.1", "quiet", log=lambda line: None)
    parts = {p["name"]: p for p in partition_table(image.disk)}
    boot, root = (tmp_path / "boot.img", tmp_path / "rootA.img")
    with image.disk.open("rb") as disk:
        for part, path in ((parts["boot"], boot), (parts["rootA"], root)):
            disk.seek(part["start"] * 512)
            path.write_bytes(disk.read(part["size"] * 512))
    grub = subprocess.run(["mtype", "-i", boot, "::EFI/BOOT/BOOTX64.EFI"], capture_output=True, check=True)
    assert QUIET_KERNEL_CONSOLE.encode() in grub.stdout  # in the grub.cfg built into GRUB
    inittab = subprocess.run(["debugfs", "-R", "cat /etc/inittab", root], capture_output=True, check=True)
    assert b"getty -L 115200 ttyS0" in inittab.stdout
    assert b"hil/svc/dropbear.run" in inittab.stdout
