"""Rig definitions: find a rig file by name, validate it, and say exactly what is wrong with it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from hil import yamlconf
from hil.errors import RigConfigError
from hil.paths import project_dirs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    """Bounds, in seconds, for the waits a rig imposes."""

    boot: PositiveFloat = 180.0
    ssh: PositiveFloat = 90.0
    command: PositiveFloat = 60.0
    shutdown: PositiveFloat = 10.0


class QemuSpec(_Strict):
    """How a virtual board is started."""

    arch: Literal["x86_64"] = "x86_64"
    machine: str = "q35"
    memory: PositiveInt = Field(256, description="MiB")
    cpus: PositiveInt = 1
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    rtc_base: str | None = Field(None, description="QEMU -rtc base=..., e.g. 2020-01-01T00:00:00")


class _RigBase(_Strict):
    """What every rig kind states: the device type its DUT is, the OS profile, its pool and bounds."""

    device_type: str
    os: str = "reference"
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
    """An access point the rig brings up on a host interface for the DUT to join."""

    interface: str
    ssid: str
    psk: str = Field(min_length=8, max_length=63, description="WPA2 passphrase")
    channel: PositiveInt = 6
    backend: Literal["hostapd"] = "hostapd"


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


# Kinds whose board hil itself provides (no hardware): they can boot the reference image by default.
VIRTUAL_KINDS = ("qemu", "twin")

RigSpec = Annotated[QemuRig | AutohatRig | TwinRig, Field(discriminator="kind")]


@dataclass(frozen=True)
class Rig:
    """A validated rig: its name, where it was defined, and its spec."""

    name: str
    path: Path
    spec: RigSpec

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
        path = Path(text)
        if not path.is_file():
            raise RigConfigError(f"rig file {path} does not exist")
    else:
        rigs = available()
        if text not in rigs:
            known = ", ".join(sorted(rigs)) or "none"
            raise RigConfigError(f"unknown rig {text!r}; known rigs: {known}")
        path = rigs[text]
    data, lines = yamlconf.read_yaml(path, RigConfigError)
    if not isinstance(data, dict):
        raise RigConfigError(f"{path}:1: a rig file is a mapping of fields (kind, device_type, ...)")
    spec = yamlconf.validate(RigSpec, data, lines, path, RigConfigError)  # type: ignore[arg-type]
    return Rig(name=path.stem, path=path, spec=spec)
