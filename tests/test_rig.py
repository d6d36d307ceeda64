"""Rig files: a wrong rig file names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.errors import RigConfigError
from hil.rig import load_rig


def _rig_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab-rig.yaml"
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _rig_file(tmp_path, text)
    with pytest.raises(RigConfigError) as info:
        load_rig(path)
    return str(info.value)


def test_the_shipped_qemu_rig_loads() -> None:
    rig = load_rig("qemu-x86_64")
    assert (rig.kind, rig.device_type, rig.spec.os) == ("qemu", "qemux86-64", "reference")


def test_unknown_field_names_file_line_and_field(tmp_path: Path) -> None:
    message = _error(tmp_path, "kind: qemu\ndevice_type: qemux86-64\nqemu:\n  cpus: 1\n  memroy: 512\n")
    assert message == f"{tmp_path / 'lab-rig.yaml'}:5: qemu.memroy: unknown field"


def test_wrong_type_names_the_line_of_the_value(tmp_path: Path) -> None:
    message = _error(tmp_path, "kind: qemu\ndevice_type: qemux86-64\ntimeouts:\n  boot: soon\n")
    assert message.startswith(f"{tmp_path / 'lab-rig.yaml'}:4: timeouts.boot: ")


def test_missing_field_is_named(tmp_path: Path) -> None:
    assert _error(tmp_path, "kind: qemu\n").endswith(":1: device_type: required field is missing")


def test_unknown_kind_lists_the_known_ones(tmp_path: Path) -> None:
    message = _error(tmp_path, "device_type: x\nkind: rocket\n")
    assert ":2: kind: 'rocket' is not one of" in message


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    assert ":3: not valid YAML" in _error(tmp_path, "kind: qemu\ndevice_type: [x,\n")


def test_negative_memory_is_refused(tmp_path: Path) -> None:
    message = _error(tmp_path, "kind: qemu\ndevice_type: x\nqemu:\n  memory: -5\n")
    assert ":4: qemu.memory: " in message


def test_unknown_rig_name_lists_the_rigs() -> None:
    with pytest.raises(RigConfigError, match=r"unknown rig 'nope'; known rigs: .*qemu-x86_64"):
        load_rig("nope")


def test_rig_dir_from_environment_is_searched_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bench-7.yaml").write_text("kind: qemu\ndevice_type: qemux86-64\nqemu:\n  memory: 512\n")
    monkeypatch.setenv("HIL_RIGS_DIR", str(tmp_path))
    assert load_rig("bench-7").spec.qemu.memory == 512
