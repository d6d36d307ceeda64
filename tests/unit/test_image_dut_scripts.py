"""The image's shell side (JSON parser, boot environment), run with the image's own busybox on the host."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hil.images.builders import bootenv
from hil.images.builders.debs import resolve, unpack
from hil.images.builders.rootfs import FILES
from hil.util.paths import cache_dir

JSON_AWK = FILES / "common" / "usr" / "lib" / "hil" / "json.awk"
BOOTENV_SH = FILES / "common" / "usr" / "lib" / "hil" / "bootenv.sh"


@pytest.fixture(scope="module")
def busybox() -> Path:
    return unpack(resolve(["busybox-static"]), cache_dir() / "debs")["busybox-static"] / "bin" / "busybox"


def json_get(busybox: Path, path: str, document: str) -> list[str]:
    proc = subprocess.run(
        [busybox, "awk", "-v", f"want={path}", "-f", JSON_AWK],
        input=document,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.splitlines()


def sh(busybox: Path, script: str, env_file: Path) -> str:
    proc = subprocess.run(
        [busybox, "sh", "-c", f". {BOOTENV_SH}\n{script}"],
        env={"BOOTENV": str(env_file), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


CONFIG = {
    "hostname": "rig-7",
    "os": {"sshKeys": ["ssh-ed25519 AAAA one", "ssh-rsa BBBB two words"]},
    "hil": {"kmsgFlood": True},
    "ntpServers": "10.0.2.2:12300 pool.example",
    "note": 'quote " and slash \\ and {braces} [brackets], commas',
}


@pytest.mark.parametrize("indent", [None, 2])
def test_dut_json_parser_reads_the_config_fields_the_image_uses(busybox: Path, indent: int | None) -> None:
    document = json.dumps(CONFIG, indent=indent)
    assert json_get(busybox, "hostname", document) == ["rig-7"]
    assert json_get(busybox, "os.sshKeys", document) == CONFIG["os"]["sshKeys"]
    assert json_get(busybox, "hil.kmsgFlood", document) == ["true"]
    assert json_get(busybox, "ntpServers", document) == ["10.0.2.2:12300 pool.example"]
    assert json_get(busybox, "note", document) == [CONFIG["note"]]


def test_dut_json_parser_returns_nothing_for_an_absent_field(busybox: Path) -> None:
    assert json_get(busybox, "os.sshKeys", '{"hostname": "x"}') == []


def test_dut_json_parser_fails_on_broken_json(busybox: Path) -> None:
    proc = subprocess.run(
        [busybox, "awk", "-v", "want=hostname", "-f", JSON_AWK],
        input='{"hostname": "x"',
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "json:" in proc.stderr


def test_boot_environment_written_by_the_dut_parses_in_python(busybox: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "bootenv"
    sh(busybox, "bootenv_load; active=B pending=1 count=2; bootenv_save", env_file)
    assert bootenv.parse(env_file.read_text()) == bootenv.BootEnv(active="B", pending=True, count=2, limit=2)
    assert not (tmp_path / "bootenv.tmp").exists()


def test_boot_environment_written_by_the_dut_is_the_grub_block_python_renders(
    busybox: Path, tmp_path: Path
) -> None:
    env_file = tmp_path / "bootenv"
    sh(busybox, "bootenv_load; active=B pending=1 count=2 limit=3; bootenv_save", env_file)
    # GRUB's save_env rewrites the block in place: same header, same 1024 bytes, or it refuses.
    assert env_file.read_text() == bootenv.BootEnv(active="B", pending=True, count=2, limit=3).render()
    assert len(env_file.read_bytes()) == 1024


def test_boot_environment_rendered_in_python_loads_on_the_dut(busybox: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "bootenv"
    env_file.write_text(bootenv.BootEnv(active="B", pending=True, count=1, limit=3).render())
    out = sh(busybox, 'bootenv_load; echo "$active $pending $count $limit $(other_slot $active)"', env_file)
    assert out.split() == ["B", "1", "1", "3", "A"]


def test_missing_or_garbled_boot_environment_falls_back_to_slot_a(busybox: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "bootenv"
    assert sh(busybox, 'bootenv_load; echo "$active $pending"', env_file).split() == ["A", "0"]
    env_file.write_text("active=C\npending=yes\ncount=$(reboot)\n")
    out = sh(busybox, 'bootenv_load; echo "$active $pending $count"', env_file)
    assert out.split() == ["A", "0", "0"]


def test_trial_slot_is_the_other_slot_only_while_pending() -> None:
    assert bootenv.BootEnv(active="A", pending=True).trial_slot == "B"
    assert bootenv.BootEnv(active="B", pending=True).trial_slot == "A"
    assert bootenv.BootEnv(active="A").trial_slot is None
