"""The CLI turns every HilError into one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def hil(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hil", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)  # fmt: skip


def test_unknown_rig_is_one_line_and_exit_2() -> None:
    out = hil("rig", "show", "no-such-rig")
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("hil: RigConfigError: unknown rig 'no-such-rig'; known rigs: ")
    assert "qemu-x86_64" in line


def test_corrupt_rig_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: qemu\ndevice_type: qemux86-64\nqemu:\n  accel: warp\n")
    out = hil("run", "--rig", str(bad), "--no-gate")
    assert out.returncode == 2
    assert f"{bad}:4: qemu.accel: " in out.stderr
    assert "Traceback" not in out.stderr


def test_image_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    out = hil("run", "--image", str(tmp_path / "missing.img"), "--no-gate")
    assert out.returncode == 2
    assert out.stderr.strip() == f"hil: ImageError: image {tmp_path / 'missing.img'} does not exist"


def test_help_explains_every_command() -> None:
    out = hil("--help")
    for command in ("run", "image", "rig", "release"):
        assert f"    {command} " in out.stdout


def test_rig_help_lists_every_technician_command() -> None:
    out = hil("rig", "--help")
    for command in ("list", "show", "discover", "power", "flash", "console", "check", "hold"):
        assert f"    {command} " in out.stdout
    assert "--force" in hil("rig", "power", "--help").stdout
    assert "--force" not in hil("rig", "check", "--help").stdout  # a check is how a rig gets healthy again
