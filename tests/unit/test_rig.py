"""Rig files: a wrong rig file names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.errors import RigConfigError
from hil.lab.rig import load_rig


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


def test_an_empty_value_reads_as_unset(tmp_path: Path) -> None:
    assert load_rig(_rig_file(tmp_path, "kind: qemu\ndevice_type: x\npool:\n")).spec.pool is None


def test_a_repeated_field_is_refused_at_its_second_line(tmp_path: Path) -> None:
    message = _error(tmp_path, "kind: qemu\ndevice_type: x\nqemu:\n  memory: 512\ndevice_type: y\n")
    assert message == f"{tmp_path / 'lab-rig.yaml'}:5: device_type: duplicate key (first at line 2)"


# A `kind: qemu` rig has a `qemu:` field: pydantic's union tag must not be taken for it.
@pytest.mark.parametrize(
    ("text", "located"),
    [
        ("kind: qemu\ndevice_type: x\nqemu: {memroy: 5}\n", "3: qemu.memroy: unknown field"),
        (
            "kind: qemu\ndevice_type: x\nqemu:\n  cpus: 1\ninstances: 0\n",
            "5: instances: Input should be greater than 0",
        ),
        ("kind: qemu\nqemu:\n  cpus: 1\n", "1: device_type: required field is missing"),
        ("kind: qemu\ndevice_type: x\nqemu:\n  cpus: 1\ntimeouts:\n  boot: soon\n", "6: timeouts.boot: "),
        (
            "kind: twin\ndevice_type: x\nqemu: {}\npower: {pin: 1}\nsd_mux: {type: gpio, pin: 2}\n",
            "1: card: required field is missing",
        ),
        ("kind: twin\ndevice_type: x\nqemu:\n  memroy: 5\n", "4: qemu.memroy: unknown field"),
        (
            "kind: twin\ndevice_type: x\npower:\n  pin: [17]\n",
            "4: power.pin: Input should be a valid integer",
        ),
        (
            "kind: autohat\ndevice_type: x\npower: {pin: 1}\nsd_mux: {type: usb, control: /dev/sg1}\n"
            "card: {serial: a, max_size: 1GB}\nconsole: {port: /dev/ttyUSB0}\nnetwork:\n  ssh_host: h\n"
            "  wifi:\n    interface: wlan1\n    ssid: bench\n    psk: short\n",
            "12: network.wifi.psk: Value error, a WPA2 passphrase is 8 to 63 characters, this one has 5",
        ),
        (
            "kind: autohat\ndevice_type: x\npower: {pin: 1}\nsd_mux:\n  type: gpio\ncard: {serial: a}\n",
            "4: sd_mux: Value error, a gpio mux needs `pin`",
        ),
    ],
)
def test_a_mistake_is_located_exactly_in_every_rig_kind(tmp_path: Path, text: str, located: str) -> None:
    assert _error(tmp_path, text).startswith(f"{tmp_path / 'lab-rig.yaml'}:{located}")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x7fELF\x02\x01\x01\x00", ":1: not valid YAML: character U+007F is not allowed (a binary file?)"),
        (b"kind: qemu\ndevice_type: caf\xe9\n", ":2: not UTF-8 text (byte 0xe9); save the file as UTF-8"),
    ],
)
def test_a_file_that_is_not_yaml_text_is_one_line(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "lab-rig.yaml"
    path.write_bytes(content)
    with pytest.raises(RigConfigError) as info:
        load_rig(path)
    assert str(info.value) == f"{path}{problem}"


def test_a_rig_path_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "rigs.yaml").mkdir()
    with pytest.raises(RigConfigError, match=r"rigs\.yaml: not a regular file$"):
        load_rig(tmp_path / "rigs.yaml")
    with pytest.raises(RigConfigError, match=r"r\.yaml: cannot read: File name too long$"):
        load_rig(tmp_path / ("r" * 300 + ".yaml"))
    with pytest.raises(RigConfigError, match=r"gone\.yaml: cannot read: No such file or directory$"):
        load_rig(tmp_path / "gone.yaml")
