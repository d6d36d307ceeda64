"""Boot phases told apart on a console: each begins where its marker shows, and together they are the boot."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.dut.boot_phases import boot_phases
from hil.os.model import Boot
from tests.unit.test_console import Wire

pytestmark = pytest.mark.timeout(60)

MARKERS = Boot.model_fields["phase_markers"].default
STEP = 0.2


@pytest.fixture
def wire(tmp_path: Path) -> Iterator[Wire]:
    with Wire(tmp_path) as wire:
        yield wire


def _boot(wire: Wire, lines: list[bytes]) -> None:
    """The DUT prints each line STEP seconds after the one before."""
    for line in lines:
        threading.Event().wait(STEP)
        wire.send(line)
        wire.console.expect_exact(line.decode().split()[-1], timeout=5)


def test_phases_begin_at_their_markers_and_add_up_to_the_boot(wire: Wire) -> None:
    _boot(wire, [
        b"\x1b[2JBdsDxe: loading Boot0001 \"UEFI Misc Device\"\r\n",
        b"\x1b[0m\x1b[30m\x1b[47mWelcome to GRUB!\r\n",
        b"\r[    0.000000] Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org)\r\n",
        b"[    1.500000] Run /init as init process\r\n",
    ])  # fmt: skip
    threading.Event().wait(STEP)
    wire.send(b"\r\nhil-dut login: ")
    wire.console.await_login_prompt(r"login:\s*$", timeout=5)
    prompted = wire.console.prompt_seen
    assert prompted is not None
    ended = prompted + STEP
    phases = boot_phases(wire.console, 0, MARKERS, begun=0.0, prompted=prompted, ended=ended)
    assert list(phases) == ["firmware", "bootloader", "kernel", "init", "login"]
    assert all(seconds >= STEP * 0.9 for seconds in list(phases.values())[1:])
    assert sum(phases.values()) == pytest.approx(ended, abs=0.01)


def test_a_missing_marker_leaves_its_time_with_the_phase_before(wire: Wire) -> None:
    _boot(
        wire,
        [
            b"U-Boot 2024.01 (Jan 01 2024)\r\n",
            b"Starting kernel ...\r\n",
            b"Run /sbin/init as init process\r\n",
        ],
    )
    ended = wire.console.seconds_at(wire.console.mark())
    phases = boot_phases(wire.console, 0, MARKERS, begun=0.0, prompted=None, ended=ended)
    assert list(phases) == ["firmware", "bootloader", "init"]
    assert phases["bootloader"] >= 2 * STEP * 0.9
    assert sum(phases.values()) == pytest.approx(ended, abs=0.01)


def test_a_reboot_counts_from_its_restart_not_from_the_earlier_boot(wire: Wire) -> None:
    _boot(wire, [b"Welcome to GRUB!\r\n", b"login: \r\n", b"reboot: Restarting system\r\n"])
    restart = wire.console.mark()
    _boot(wire, [b"Welcome to GRUB!\r\n", b"[    0.000000] Linux version 6.1\r\n"])
    begun = wire.console.seconds_at(restart)
    ended = wire.console.seconds_at(wire.console.mark())
    phases = boot_phases(wire.console, restart, MARKERS, begun=begun, prompted=None, ended=ended)
    assert list(phases) == ["firmware", "bootloader", "kernel"]
    assert sum(phases.values()) == pytest.approx(ended - begun, abs=0.01)
