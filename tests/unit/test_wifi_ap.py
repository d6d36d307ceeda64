"""A rig's optional wifi AP: described in the rig file, run with hostapd, offered as the `wifi` feature."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hil.drivers.wifi_ap import WifiAccessPoint, hostapd_config, wpa_psk
from hil.errors import HilError, RigConfigError, ToolMissing
from hil.lab.rig import WifiSpec, load_rig


def test_a_rig_with_an_access_point_offers_wifi_and_a_virtual_rig_does_not() -> None:
    assert load_rig("lab-rpi4-01").features == {"wifi"}
    assert load_rig("qemu-x86_64").features == frozenset()


def test_hostapd_gets_a_wpa2_access_point_on_the_rigs_interface() -> None:
    config = hostapd_config(WifiSpec(interface="wlan1", ssid="hil-bench-1", psk="correct horse"))
    assert {"interface=wlan1", f"ssid2={b'hil-bench-1'.hex()}", "wpa=2", "wpa_key_mgmt=WPA-PSK"} <= set(
        config.splitlines()
    )
    assert f"wpa_psk={wpa_psk('correct horse', 'hil-bench-1')}" in config.splitlines()
    assert "correct horse" not in config  # the passphrase itself never lands in a file


def test_the_psk_is_derived_as_ieee_802_11i_says() -> None:
    # The standard's own test vector (IEEE 802.11i-2004, H.4.1).
    assert wpa_psk("password", "IEEE") == "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"


def test_an_ssid_of_characters_hostapd_reads_specially_stays_one_value() -> None:
    ssid = 'a#b="c" \\n wlan'
    config = hostapd_config(WifiSpec(interface="wlan1", ssid=ssid, psk="12345678"))
    [line] = [line for line in config.splitlines() if line.startswith("ssid2=")]
    assert bytes.fromhex(line.removeprefix("ssid2=")).decode() == ssid
    keys = [line.split("=", 1)[0] for line in config.splitlines() if line]
    assert keys == ["interface", "driver", "ssid2", "hw_mode", "channel", "wpa", "wpa_key_mgmt",
                    "rsn_pairwise", "wpa_psk"]  # fmt: skip


def _lab_rig(tmp_path: Path, old: str, new: str) -> tuple[Path, int]:
    """The shipped physical rig with one line changed, and the number of that line."""
    rig = Path(__file__).resolve().parents[2] / "rigs" / "lab-rpi4-01.yaml"
    bad = tmp_path / "lab.yaml"
    bad.write_text(rig.read_text().replace(old, new))
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if new.splitlines()[0] in text)
    return bad, line


@pytest.mark.parametrize(
    ("ssid", "problem"),
    [
        (
            r'"hil\ninterface=eth0"',
            r"control character '\\n' in the SSID \(it would inject hostapd settings\)",
        ),
        (r'"hil\rx"', r"control character '\\r' in the SSID"),
        ('"a-name-longer-than-thirty-two-bytes"', "an SSID is 1 to 32 bytes, this one is 35"),
        ('""', "an SSID is 1 to 32 bytes, this one is 0"),
    ],
)
def test_an_ssid_that_would_break_the_hostapd_line_is_refused_with_its_line(
    tmp_path: Path, ssid: str, problem: str
) -> None:
    bad, line = _lab_rig(tmp_path, "ssid: hil-bench-1", f"ssid: {ssid}")
    with pytest.raises(RigConfigError, match=rf"lab.yaml:{line}: network.wifi.ssid: Value error, {problem}"):
        load_rig(bad)


def test_a_passphrase_with_a_control_character_is_refused_without_quoting_it(tmp_path: Path) -> None:
    bad, line = _lab_rig(tmp_path, "psk: change-me-please", r'psk: "change-me\nwpa=0"')
    with pytest.raises(RigConfigError) as info:
        load_rig(bad)
    assert str(info.value).startswith(
        f"{bad}:{line}: network.wifi.psk: Value error, a WPA2 passphrase is printable"
    )
    assert "change-me" not in str(info.value)


def test_an_interface_name_that_is_not_one_word_is_refused(tmp_path: Path) -> None:
    bad, line = _lab_rig(tmp_path, "interface: wlan1", r'interface: "wlan1\nssid=x"')
    with pytest.raises(RigConfigError, match=rf"lab.yaml:{line}: network.wifi.interface: "):
        load_rig(bad)


def test_the_psk_is_a_secret_that_repr_and_dumps_mask() -> None:
    spec = WifiSpec(interface="wlan1", ssid="hil", psk="correct horse")
    assert "correct horse" not in repr(spec)
    assert spec.model_dump(mode="json")["psk"] == "**********"
    assert WifiAccessPoint(spec, Path("/nonexistent")).dut_config() == {
        "wifi": {"ssid": "hil", "psk": "correct horse"}
    }


def test_a_missing_hostapd_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    ap = WifiAccessPoint(WifiSpec(interface="wlan1", ssid="x", psk="12345678"), tmp_path)
    with pytest.raises(ToolMissing, match=r"apt-get install hostapd"):
        ap.start()


def _fake_hostapd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """A `hostapd` on PATH that runs `script` (sh) with the config file as $1."""
    fake = tmp_path / "bin" / "hostapd"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")


def test_the_ap_is_up_once_hostapd_says_so_and_gone_after_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_hostapd(tmp_path, monkeypatch, 'echo "wlan1: AP-ENABLED"; echo $$ >"$1.pid"; exec sleep 60')
    ap = WifiAccessPoint(WifiSpec(interface="wlan1", ssid="hil", psk="12345678"), tmp_path)
    ap.start(timeout=10)
    pid = int((tmp_path / "hostapd.conf.pid").read_text())
    assert Path(f"/proc/{pid}").exists()
    ap.stop()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower():
        assert time.monotonic() < deadline, "hostapd outlived stop()"
        time.sleep(0.05)


def test_a_hostapd_that_fails_is_named_with_its_last_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_hostapd(tmp_path, monkeypatch, 'echo "nl80211: Could not configure driver mode" >&2; exit 1')
    ap = WifiAccessPoint(WifiSpec(interface="wlan1", ssid="hil", psk="12345678"), tmp_path)
    with pytest.raises(HilError, match=r"wifi AP hil on wlan1 did not come up: .*Could not configure driver"):
        ap.start(timeout=10)


def test_a_short_passphrase_is_refused_with_its_line(tmp_path: Path) -> None:
    bad, line = _lab_rig(tmp_path, "psk: change-me-please", "psk: short")
    with pytest.raises(RigConfigError, match=rf"lab.yaml:{line}: network.wifi.psk: "):
        load_rig(bad)
