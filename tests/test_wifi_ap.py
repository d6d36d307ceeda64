"""A rig's optional wifi AP: described in the rig file, run with hostapd, offered as the `wifi` feature."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.drivers.wifi_ap import WifiAccessPoint, hostapd_config
from hil.errors import RigConfigError, ToolMissing
from hil.rig import WifiSpec, load_rig


def test_a_rig_with_an_access_point_offers_wifi_and_a_virtual_rig_does_not() -> None:
    assert load_rig("lab-rpi4-01").features == {"wifi"}
    assert load_rig("qemu-x86_64").features == frozenset()


def test_hostapd_gets_a_wpa2_access_point_on_the_rigs_interface() -> None:
    config = hostapd_config(WifiSpec(interface="wlan1", ssid="hil-bench-1", psk="correct horse"))
    assert {"interface=wlan1", "ssid=hil-bench-1", "wpa=2", "wpa_passphrase=correct horse"} <= set(
        config.splitlines()
    )


def test_a_missing_hostapd_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    ap = WifiAccessPoint(WifiSpec(interface="wlan1", ssid="x", psk="12345678"), tmp_path)
    with pytest.raises(ToolMissing, match=r"apt-get install hostapd"):
        ap.start()


def test_a_short_passphrase_is_refused_with_its_line(tmp_path: Path) -> None:
    rig = Path(__file__).resolve().parent.parent / "rigs" / "lab-rpi4-01.yaml"
    bad = tmp_path / "lab.yaml"
    bad.write_text(rig.read_text().replace("psk: change-me-please", "psk: short"))
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "psk: short" in text)
    with pytest.raises(RigConfigError, match=rf"lab.yaml:{line}: network.wifi.psk: "):
        load_rig(bad)
