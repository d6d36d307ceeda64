"""The technician's `hil rig` commands on a physical rig with gpiozero's mock pins: the relay stays as a
command sets it, a rig whose check failed needs --force (also through `hil run` and pytest's --force-rig),
and `hil rig show` never prints a secret."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import gpiozero
import pytest
from gpiozero.devices import _devices_shutdown
from gpiozero.pins.mock import MockFactory

from hil.commands.main import main
from hil.lab.pool import health, record_health

ROOT = Path(__file__).resolve().parents[2]
LAB_YAML = (ROOT / "rigs" / "lab-rpi4-01.yaml").read_text().replace("off_time: 2", "off_time: 0.05")
RELAY_PIN = 17


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A physical rig `bench-7` of our own (its lease, health and relay record), on mock pins."""
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    (rigs / "bench-7.yaml").write_text(LAB_YAML)
    monkeypatch.setenv("HIL_RIGS_DIR", str(rigs))
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(gpiozero.Device, "pin_factory", MockFactory())
    return "bench-7"


def _new_process(monkeypatch: pytest.MonkeyPatch) -> MockFactory:
    """What the next hil command sees: fresh pins (every real pin factory opens a pin as an input)."""
    factory = MockFactory()
    monkeypatch.setattr(gpiozero.Device, "pin_factory", factory)
    return factory


def test_power_on_leaves_the_relay_closed_after_the_command(bench: str, tmp_path: Path, capsys) -> None:
    assert main(["rig", "power", bench, "on"]) == 0
    assert capsys.readouterr().out == f"{bench}: power on\n"
    relay = gpiozero.Device.pin_factory.pin(RELAY_PIN)
    assert (relay.function, relay.state) == ("output", True)
    _devices_shutdown()  # gpiozero's exit handler, as the process ends
    assert (relay.function, relay.state) == ("output", True)
    record = json.loads((tmp_path / "cache" / "relays" / f"gpio-{RELAY_PIN}.json").read_text())
    assert record["state"] == "on"


def test_the_next_command_opens_the_relay_where_the_last_one_left_it(
    bench: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["rig", "power", bench, "on"]) == 0
    factory = _new_process(monkeypatch)
    assert main(["rig", "power", bench, "off"]) == 0
    assert [s.state for s in factory.pin(RELAY_PIN).states] == [False, True, False]  # rest, restored, off
    factory = _new_process(monkeypatch)
    assert main(["rig", "power", bench, "cycle"]) == 0
    assert [s.state for s in factory.pin(RELAY_PIN).states] == [False, True]  # off stayed off; cycle ends on
    assert factory.pin(RELAY_PIN).state is True


def test_a_rig_whose_check_failed_is_refused_naming_the_check_unless_forced(bench: str, capsys) -> None:
    checked = record_health(bench, False, "serial: the serial line stayed silent for 30 s after power-on")
    assert main(["rig", "power", bench, "on"]) == 1
    assert capsys.readouterr().err == (
        f"hil: LeaseError: rig {bench} failed its last check (serial: the serial line stayed silent for 30 s "
        f"after power-on, checked {checked.checked.isoformat(timespec='seconds')}); `hil rig check {bench}` "
        "re-checks it, --force (pytest: --force-rig) uses it anyway\n"
    )
    assert gpiozero.Device.pin_factory.pin(RELAY_PIN).state is False
    assert main(["rig", "power", bench, "on", "--force"]) == 0
    assert gpiozero.Device.pin_factory.pin(RELAY_PIN).state is True


def test_hil_run_refuses_an_unhealthy_rig_at_once_and_passes_force_to_pytest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    rig = tmp_path / "vm-9.yaml"
    rig.write_text("kind: qemu\ndevice_type: qemux86-64\ninstances: 1\n")
    record_health("vm-9", False, "boot: no login within 180 s")
    assert main(["run", "--rig", str(rig), "--no-gate"]) == 1
    assert "rig vm-9 failed its last check (boot: no login within 180 s, checked " in capsys.readouterr().err
    passed: list[list[str]] = []
    monkeypatch.setattr("pytest.main", lambda args: passed.append(args) or 5)
    monkeypatch.setattr("hil.dut.provision.resolve_image", lambda rig, image: tmp_path / "image.img")
    main(["run", "--rig", str(rig), "--no-gate", "--force", "--artifacts", str(tmp_path / "art")])
    assert "--force-rig" in passed[0]


USES_RIG = """
def test_uses_the_rig(rig):
    assert rig.name == "vm-9"
"""


def test_the_pytest_plugin_needs_force_rig_for_an_unhealthy_rig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    (rigs / "vm-9.yaml").write_text("kind: qemu\ndevice_type: qemux86-64\ninstances: 1\n")
    (tmp_path / "test_rig.py").write_text(USES_RIG)
    monkeypatch.setenv("HIL_RIGS_DIR", str(rigs))
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    record_health("vm-9", False, "sd mux: stuck")
    env = dict(os.environ)

    def pytest_run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path / "test_rig.py"),
             "--rig", "vm-9", "--hil-artifacts", str(tmp_path / "art"), *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    refused = pytest_run()
    assert refused.returncode != 0
    assert "rig vm-9 failed its last check (sd mux: stuck, checked " in refused.stdout
    forced = pytest_run("--force-rig")
    assert forced.returncode == 0, forced.stdout[-2000:]


def test_show_masks_the_wifi_psk_and_every_password(tmp_path: Path, capsys) -> None:
    rig = tmp_path / "bench-8.yaml"
    rig.write_text(
        LAB_YAML.replace("os: balenaos", "os:\n  extends: balenaos\n  login:\n    password: hunter2hunter2")
    )
    assert main(["rig", "show", str(rig)]) == 0
    out = capsys.readouterr().out
    assert "change-me-please" not in out and "hunter2hunter2" not in out
    shown = json.loads(out.split("\n", 1)[1])
    assert shown["network"]["wifi"]["psk"] == "**********"
    assert shown["os"]["login"]["password"] == "**********"
    assert shown["network"]["wifi"]["ssid"] == "hil-bench-1"  # what is not a secret stays readable


def _fake_steps(monkeypatch: pytest.MonkeyPatch, transcript: Path) -> None:
    """The hardware steps as a bench without a card would end them: power and mux fine, the serial line
    printing a bootloader banner, then silent."""
    from hil.errors import HilError

    def serial(board: object) -> str:
        with transcript.open("ab") as f:
            f.write(b"U-Boot 2024.01 (bench-7)\r\n")
        raise HilError("silent")

    monkeypatch.setattr("hil.dut.check._power", lambda board: "switched")
    monkeypatch.setattr("hil.dut.check._mux", lambda board: "handed over")
    monkeypatch.setattr("hil.dut.check._serial", serial)


def test_check_keeps_its_verdict_here_and_in_the_store_with_its_console(
    bench: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from hil.lab.lab_store import LabStore

    store = tmp_path / "store.sqlite"
    monkeypatch.setenv("HIL_STORE", str(store))
    transcript = tmp_path / "cache" / "rig-logs" / bench / "console.log"
    transcript.parent.mkdir(parents=True)
    transcript.write_bytes(b"an earlier console session\r\n")
    _fake_steps(monkeypatch, transcript)
    assert main(["rig", "check", bench]) == 1
    assert "UNHEALTHY" in capsys.readouterr().out
    assert health(bench) is not None and not health(bench).healthy  # type: ignore[union-attr]
    check = LabStore(store).latest_checks()[bench]
    assert (check.host, check.healthy, check.reason) == (socket.gethostname(), False, "serial: silent")
    assert LabStore(store).console(check.id) == (check, b"U-Boot 2024.01 (bench-7)\r\n")  # this check's only


def test_check_goes_on_when_the_store_cannot_be_reached(
    bench: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HIL_STORE", "postgresql://hil@/lab?host=/nonexistent/rig-commands")
    _fake_steps(monkeypatch, tmp_path / "console.log")
    caplog.set_level(logging.WARNING)
    assert main(["rig", "check", bench]) == 1
    last = health(bench)
    assert last is not None and (last.healthy, last.reason) == (False, "serial: silent")
    # One line, whichever meets the store first: the check, or its lease's mirror.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "the store cannot be used" in warnings[0]
