"""The per-architecture parts of the reference image: one table, and a GRUB script that parses for each."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hil.errors import ImageError
from hil.images import arch
from hil.images.builders.reference import grub_cfg


@pytest.mark.parametrize("name", sorted(arch.ARCHES))
def test_grub_script_parses_for_every_architecture(name: str, tmp_path: Path) -> None:
    if shutil.which("grub-script-check") is None:
        pytest.skip("grub-script-check (grub-common) is not installed")
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(grub_cfg(arch.ARCHES[name]))
    proc = subprocess.run(["grub-script-check", cfg], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "@" not in cfg.read_text(), "a placeholder was left unfilled"


def test_grub_loads_the_kernel_from_the_slot_it_picked_with_the_boards_console() -> None:
    cfg = grub_cfg(arch.ARCHES["aarch64"])
    assert 'linux "($disk,gpt$part)/boot/vmlinuz" console=ttyAMA0,115200' in cfg
    assert "set part=2; else set part=3" in cfg  # rootA and rootB in the GPT layout
    assert "terminal_output serial" not in cfg  # on Arm the firmware's console already is the UART
    assert "terminal_output serial" in grub_cfg(arch.ARCHES["x86_64"])


def test_every_architecture_has_its_own_device_type_and_console() -> None:
    boards = arch.ARCHES.values()
    assert len({a.device_type for a in boards}) == len({a.console for a in boards}) == len(arch.ARCHES)
    assert arch.for_device_type("generic-aarch64") is arch.ARCHES["aarch64"]
    assert arch.for_device_type("raspberrypi4-64") is None


def test_unknown_architecture_is_refused_by_name() -> None:
    with pytest.raises(ImageError, match=r"'riscv64'.*x86_64, aarch64"):
        arch.get("riscv64")
