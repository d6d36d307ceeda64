"""The rig's wifi access point: hostapd on a host interface, joined with config.json's SSID and PSK."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from hil.errors import HilError, ToolMissing
from hil.util.serverproc import ServerProcess

log = logging.getLogger("hil.wifi")


class WifiSpec(Protocol):
    """The access point a rig file describes (`hil.lab.rig.WifiSpec` validates it)."""

    @property
    def interface(self) -> str: ...
    @property
    def ssid(self) -> str: ...
    @property
    def psk(self) -> SecretStr: ...
    @property
    def channel(self) -> int: ...


def hostapd_config(spec: WifiSpec) -> str:
    """A WPA2-PSK access point on the rig's interface.

    hostapd reads each value to the end of its line, unquoted: the SSID goes in as hex (`ssid2`), which
    no byte can break out of, and the passphrase as the 256-bit key WPA2 derives from it (`wpa_psk`), so
    no passphrase is written to disk. WifiSpec admits only a plain interface name and channel number.
    """
    return "\n".join([
        f"interface={spec.interface}", "driver=nl80211", f"ssid2={spec.ssid.encode().hex()}", "hw_mode=g",
        f"channel={spec.channel}", "wpa=2", "wpa_key_mgmt=WPA-PSK", "rsn_pairwise=CCMP",
        f"wpa_psk={wpa_psk(spec.psk.get_secret_value(), spec.ssid)}", "",
    ])  # fmt: skip


def wpa_psk(passphrase: str, ssid: str) -> str:
    """The WPA2 pre-shared key of a passphrase on an SSID (IEEE 802.11i: PBKDF2-SHA1, 4096 rounds), in hex."""
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


class WifiAccessPoint:
    """Starts hostapd for the rig's AP and stops it with the rig (or with hil, however hil ends: it is a
    ServerProcess)."""

    def __init__(self, spec: WifiSpec, workdir: Path) -> None:
        self.spec = spec
        self.config = workdir / "hostapd.conf"
        self.log = workdir / "hostapd.log"
        self._server: ServerProcess | None = None

    def start(self, timeout: float = 15) -> None:
        """Bring the AP up; HilError with hostapd's last words when it does not come up."""
        hostapd = shutil.which("hostapd")
        if hostapd is None:
            raise ToolMissing("hostapd is not installed (apt-get install hostapd); the rig's wifi needs it")
        self.config.write_text(hostapd_config(self.spec))
        self.log.write_bytes(b"")  # this start's words only: an earlier AP-ENABLED must not count
        self._server = ServerProcess("hostapd", [hostapd, str(self.config)], self.log)
        try:
            self._server.start(lambda: "AP-ENABLED" in self.log.read_text(errors="replace"), timeout)
        except HilError as exc:
            where = f"{self.spec.ssid} on {self.spec.interface}"
            raise HilError(f"wifi AP {where} did not come up: {exc}") from None
        log.info("wifi AP %s up on %s", self.spec.ssid, self.spec.interface)

    def stop(self) -> None:
        """Take the AP down."""
        if self._server is not None:
            self._server.stop()
        self._server = None

    def dut_config(self) -> dict[str, object]:
        """What the DUT's config.json needs to join this AP."""
        return {"wifi": {"ssid": self.spec.ssid, "psk": self.spec.psk.get_secret_value()}}
