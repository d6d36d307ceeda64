"""Rig definitions: find a rig file by name, validate it, and say exactly what is wrong with it."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)

from hil.drivers.card import CardIdentity
from hil.drivers.qemu.machine import Machine
from hil.errors import RigConfigError
from hil.os.loader import load_inline
from hil.os.model import OsProfile
from hil.util import yamlconf
from hil.util.paths import project_dirs

if TYPE_CHECKING:
    from hil.drivers.twin import TwinWiring


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    """Bounds, in seconds, for the waits a rig imposes."""

    boot: PositiveFloat = 180.0
    ssh: PositiveFloat = 90.0
    command: PositiveFloat = 60.0
    shutdown: PositiveFloat = 10.0
    install: PositiveFloat = Field(
        600.0, description="a flasher image: from power-on until it installed the OS and powered off"
    )


class QemuSpec(_Strict):
    """How a virtual board is started."""

    arch: Literal["x86_64", "aarch64"] = "x86_64"
    machine: str = Field("q35", description="QEMU -machine: q35 for x86_64, virt for aarch64")
    cpu: str | None = Field(None, description="QEMU -cpu, e.g. cortex-a57 (fast under TCG); None: QEMU's")
    memory: PositiveInt = Field(256, description="MiB")
    cpus: PositiveInt = 1
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    rtc_base: str | None = Field(None, description="QEMU -rtc base=..., e.g. 2020-01-01T00:00:00")
    internal_disk: ByteSize | None = Field(
        None,
        description="a disk inside the board, e.g. 8GiB (balena's Leviathan gives 8 GiB): a flasher image "
        "installs onto it from a second disk; any other image is written onto it. null: the image is the "
        "board's only disk",
    )

    @field_validator("internal_disk")
    @classmethod
    def _a_disk_to_install_onto(cls, size: ByteSize | None) -> ByteSize | None:
        if size is not None and size < 1 << 20:
            raise ValueError(f"an internal disk of {size} bytes holds no OS; give a size such as 8GiB")
        return size

    def to_machine(self) -> Machine:
        """The QEMU driver's plain values."""
        return Machine(**self.model_dump())


class Credentials(_Strict):
    """How hil gets into this rig's DUT, over its OS profile's defaults (secrets stay out of logs)."""

    login_user: str | None = None
    password: SecretStr | None = Field(None, description="console password (prefer password_env)")
    password_env: str | None = Field(None, description="environment variable holding the console password")
    ssh_user: str | None = None
    ssh_port: PositiveInt | None = None
    key_file: Path | None = Field(None, description="a private key the DUT accepts (relative to this file)")


class _RigBase(_Strict):
    """What every rig kind states: the device type its DUT is, the OS profile, its pool and bounds."""

    device_type: str
    os: str | dict[str, Any] = Field(
        "reference", description="OS profile name, or a profile inline (a mapping that extends one)"
    )
    credentials: Credentials | None = None
    description: str = ""
    pool: str | None = Field(None, description="pool this rig serves (--rig pool:NAME)")
    timeouts: Timeouts = Timeouts()


class QemuRig(_RigBase):
    """A virtual board: QEMU booting the image through UEFI firmware."""

    kind: Literal["qemu"]
    # A virtual board has no hardware to share: the bound is the agent's CPU. Four TCG boards on two cores
    # take about 2.5 x one board's time (bench/parallel.py), so sessions run side by side, not in turn.
    instances: PositiveInt = Field(4, description="boards of this definition one agent may run at once")
    qemu: QemuSpec = QemuSpec()


class PowerSpec(_Strict):
    """The relay that switches the DUT's supply."""

    pin: int | str = Field(description="GPIO pin (gpiozero name or BCM number)")
    active_high: bool = True
    off_time: PositiveFloat = Field(1.0, description="seconds off in a power cycle, for the supply to drain")


class MuxSpec(_Strict):
    """The SD mux: an autohat GPIO select line, or a USB-SD-Mux."""

    type: Literal["gpio", "usb"]
    pin: int | str | None = None
    host_level: bool = Field(True, description="gpio: the line level that gives the card to the host")
    control: str | None = Field(None, description="usb: the mux's /dev/sg* control node")

    @model_validator(mode="after")
    def _needs_its_line(self) -> MuxSpec:
        if self.type == "gpio" and self.pin is None:
            raise ValueError("a gpio mux needs `pin`")
        if self.type == "usb" and not self.control:
            raise ValueError("a usb mux needs `control` (its /dev/sg* node)")
        return self


class CardSpec(_Strict):
    """Which block device is the rig's card: its reader's USB identity or by-path name, and a size bound."""

    vendor_id: str | None = None
    product_id: str | None = None
    serial: str | None = None
    by_path: str | None = None
    max_size: ByteSize = Field(description="refuse any disk larger than this, e.g. 64GB")

    @model_validator(mode="after")
    def _identifies_something(self) -> CardSpec:
        if not (self.serial or self.by_path or (self.vendor_id and self.product_id)):
            raise ValueError("name the card reader: serial, by_path, or vendor_id with product_id")
        return self


class ConsoleSpec(_Strict):
    """The DUT's serial console: a /dev/serial/by-id path or any pyserial URL."""

    port: str
    baudrate: PositiveInt = 115200


class WifiSpec(_Strict):
    """An access point the rig brings up on a host interface for the DUT to join.

    Each value lands on a line of hostapd's configuration, where a newline would start a directive of the
    file's author's choosing: only what the standards allow gets through, and the PSK stays masked.
    """

    interface: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,15}$", description="host wifi interface, e.g. wlan1")
    ssid: str = Field(description="1 to 32 bytes, no control characters")
    psk: SecretStr = Field(description="WPA2 passphrase: 8 to 63 printable ASCII characters")
    channel: PositiveInt = 6
    backend: Literal["hostapd"] = "hostapd"

    @field_validator("ssid")
    @classmethod
    def _ssid_is_one_plain_line(cls, ssid: str) -> str:
        if not 1 <= len(ssid.encode()) <= 32:
            raise ValueError(f"an SSID is 1 to 32 bytes, this one is {len(ssid.encode())}")
        if bad := next((c for c in ssid if unicodedata.category(c) == "Cc"), None):
            raise ValueError(f"control character {bad!r} in the SSID (it would inject hostapd settings)")
        return ssid

    @field_validator("psk")
    @classmethod
    def _psk_is_a_wpa2_passphrase(cls, psk: SecretStr) -> SecretStr:
        text = psk.get_secret_value()  # the messages never quote it
        if not 8 <= len(text) <= 63:
            raise ValueError(f"a WPA2 passphrase is 8 to 63 characters, this one has {len(text)}")
        if not all(" " <= c <= "~" for c in text):
            raise ValueError("a WPA2 passphrase is printable ASCII only (no control or non-ASCII characters)")
        return psk


class NetworkSpec(_Strict):
    """How the host reaches the DUT: the lab LAN (wired), and optionally a wifi AP the rig runs."""

    ssh_host: str
    ssh_port: PositiveInt | None = Field(None, description="default: the OS profile's SSH port")
    interface: str | None = Field(None, description="the host's wired interface facing the DUT")
    wifi: WifiSpec | None = None


class AutohatRig(_RigBase):
    """A physical board: relay power, SD mux, card reader, serial console, SSH over the lab network."""

    kind: Literal["autohat"]
    power: PowerSpec
    sd_mux: MuxSpec
    card: CardSpec
    console: ConsoleSpec
    network: NetworkSpec


class TwinRig(_RigBase):
    """The digital twin: the autohat drivers unchanged, their pins and card wired to a QEMU board."""

    kind: Literal["twin"]
    qemu: QemuSpec = QemuSpec()
    power: PowerSpec
    sd_mux: MuxSpec
    card: CardSpec

    @field_validator("qemu")
    @classmethod
    def _boots_its_card(cls, qemu: QemuSpec) -> QemuSpec:
        if qemu.internal_disk is not None:
            raise ValueError("a twin boots its card: internal_disk is for qemu rigs")
        return qemu

    def to_wiring(self) -> TwinWiring:
        """The twin driver's plain values."""
        from hil.drivers.twin import TwinWiring  # at call time, for start-up speed: twin.py loads gpiozero

        card = self.card
        if self.sd_mux.pin is None:
            raise RigConfigError(
                f"a twin's sd_mux is a GPIO line on mock pins: give it `pin` ({self.sd_mux})"
            )
        return TwinWiring(
            machine=self.qemu.to_machine(),
            power_pin=self.power.pin,
            active_high=self.power.active_high,
            off_time=self.power.off_time,
            mux_pin=self.sd_mux.pin,
            host_level=self.sd_mux.host_level,
            card=CardIdentity(card.vendor_id, card.product_id, card.serial, card.by_path),
            card_bytes=int(card.max_size),
            device_type=self.device_type,
            shutdown_timeout=self.timeouts.shutdown,
        )


# Kinds whose board hil itself provides (no hardware): they can boot the reference image by default.
VIRTUAL_KINDS = ("qemu", "twin")

RigSpec = Annotated[QemuRig | AutohatRig | TwinRig, Field(discriminator="kind")]


@dataclass(frozen=True)
class Rig:
    """A validated rig: its name, where it was defined, and its spec."""

    name: str
    path: Path
    spec: RigSpec
    profile: OsProfile

    @property
    def kind(self) -> str:
        """The rig kind: qemu, autohat or twin."""
        return self.spec.kind

    @property
    def features(self) -> frozenset[str]:
        """What the rig offers beyond a booted DUT, for `requires(...)`-marked tests (e.g. wifi)."""
        network = getattr(self.spec, "network", None)
        return frozenset({"wifi"} if network is not None and network.wifi is not None else ())

    @property
    def device_type(self) -> str:
        """The device type the rig's DUT is (images built for another are refused)."""
        return self.spec.device_type


def available() -> dict[str, Path]:
    """Every rig name found, mapped to its file (earlier directories win)."""
    found: dict[str, Path] = {}
    for d in project_dirs("rigs", "HIL_RIGS_DIR"):
        for path in sorted(d.glob("*.yaml")):
            if path.stem != "pools":
                found.setdefault(path.stem, path)
    return found


def load_rig(name_or_path: str | Path) -> Rig:
    """Load a rig by name (from the rig directories) or by the path of its YAML file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        path = Path(text)  # read_yaml says why a path cannot be read (missing, a directory, ...)
    else:
        rigs = available()
        if text not in rigs:
            known = ", ".join(sorted(rigs)) or "none"
            raise RigConfigError(f"unknown rig {text!r}; known rigs: {known}")
        path = rigs[text]
    data, lines = yamlconf.read_yaml(path, RigConfigError)
    if not isinstance(data, dict):
        raise RigConfigError(f"{path}:1: a rig file is a mapping of fields (kind, device_type, ...)")
    spec: RigSpec = yamlconf.validate(RigSpec, data, lines, path, RigConfigError)
    credentials = {k: v for k, v in (data.get("credentials") or {}).items() if v is not None}
    profile = load_inline(data.get("os", spec.os), default_name=path.stem, where=path, lines=lines,
                          credentials=credentials)  # fmt: skip
    return Rig(name=path.stem, path=path, spec=spec, profile=profile)
