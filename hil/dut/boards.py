"""What a DUT needs from a rig's hardware, and the table that builds it for each rig kind."""

from __future__ import annotations

# Start-up speed: each rig kind's drivers are imported when that kind is used (gpiozero for autohat,
# qemu.qmp for QEMU), so a run on one kind never loads the others'.
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hil.console.transport import Transport
from hil.drivers.capabilities import RIG_CAPABILITIES, capability_name, declared
from hil.drivers.config_json import ConfigPlace
from hil.lab.pool import HalfWrittenCard
from hil.lab.rig import AutohatRig, QemuRig, Rig, TwinRig
from hil.os.model import OsProfile
from hil.util.hostproc import tool
from hil.util.workdir import make_workdir

if TYPE_CHECKING:
    from hil.drivers.sdmux import SdMux


class Board(Protocol):
    """The hardware side of a rig: disk, power, console line and the SSH endpoint."""

    ssh_host: str
    ssh_port: int

    def flash(self, image: Path, config: dict[str, Any]) -> None:
        """Write the image (power must be off) and configure it with config.json."""
        ...

    def power_on(self, deadline: float) -> None:
        """Apply power; return once the board runs."""
        ...

    def power_off(self, grace: float = 10.0) -> None:
        """Cut power."""
        ...

    def console_transport(self, timeout: float) -> Transport:
        """Open the board's console line."""
        ...

    def exit_reason(self) -> str | None:
        """Why the board stopped on its own (QEMU died, ...), or None."""
        ...

    def close(self) -> None:
        """Power off and release everything temporary."""
        ...


@dataclass(frozen=True)
class BoardKind:
    """How to check a host for a rig kind, its board class (imported on use), and how to build its board."""

    preflight: Callable[[Rig], None]
    board_class: Callable[[], type]
    make: Callable[[Rig, OsProfile, Path], Board]


def config_place(profile: OsProfile) -> ConfigPlace | None:
    """Where config.json goes on a flashed disk, from the profile's layout; None: the OS reads none."""
    layout = profile.layout
    if layout.config_path is None:
        return None
    boot = layout.boot_partition()
    return ConfigPlace(boot.number if boot else None, layout.config_on_boot_partition() or "/config.json")


def _qemu_preflight(rig: Rig) -> None:
    from hil.drivers.qemu.board import preflight

    assert isinstance(rig.spec, QemuRig | TwinRig)  # only qemu and twin rigs come here (BOARD_KINDS)
    preflight(rig.spec.qemu.to_machine())


def _qemu_board(rig: Rig, profile: OsProfile, artifacts: Path) -> Board:
    from hil.drivers.qemu.board import QemuBoard

    assert isinstance(rig.spec, QemuRig)  # only qemu rigs come here (BOARD_KINDS)
    machine, workdir = rig.spec.qemu.to_machine(), make_workdir(rig.name)
    return QemuBoard(
        rig.name, machine, workdir, artifacts, profile.ssh.port, config_place=config_place(profile),
        install_timeout=rig.spec.timeouts.install,
    )  # fmt: skip


def _autohat_board(rig: Rig, profile: OsProfile, artifacts: Path) -> Board:
    from hil.drivers.autohat import AutohatBoard
    from hil.drivers.card import CardIdentity, CardLocator
    from hil.drivers.power import RelayPower, relay_record
    from hil.drivers.sdmux import GpioSdMux, UsbSdMux

    spec = rig.spec
    assert isinstance(spec, AutohatRig)  # only autohat rigs come here (BOARD_KINDS)
    card = spec.card
    locator = CardLocator(CardIdentity(card.vendor_id, card.product_id, card.serial, card.by_path))
    mux: SdMux
    if spec.sd_mux.type == "gpio":
        assert spec.sd_mux.pin is not None  # MuxSpec refuses a gpio mux without its pin
        mux = GpioSdMux(spec.sd_mux.pin, spec.sd_mux.host_level, locator)
    else:
        assert spec.sd_mux.control is not None  # and a usb mux without its control node
        mux = UsbSdMux(spec.sd_mux.control, locator)
    return AutohatBoard(
        rig.name,
        power=RelayPower(spec.power.pin, spec.power.active_high, record=relay_record(spec.power.pin)),
        mux=mux,
        console_port=spec.console.port,
        baudrate=spec.console.baudrate,
        ssh_host=spec.network.ssh_host,
        ssh_port=spec.network.ssh_port or profile.ssh.port,
        max_card_bytes=int(card.max_size),
        device_type=rig.device_type,
        off_time=spec.power.off_time,
        guard=HalfWrittenCard(rig.name),
        config_place=config_place(profile),
    )


def _autohat_preflight(rig: Rig) -> None:
    tool("mcopy", "mtools")  # writes config.json onto the flashed card


def _twin_board(rig: Rig, profile: OsProfile, artifacts: Path) -> Board:
    from hil.drivers.twin import TwinBoard

    assert isinstance(rig.spec, TwinRig)  # only twin rigs come here (BOARD_KINDS)
    return TwinBoard(
        rig.name,
        rig.spec.to_wiring(),
        make_workdir(rig.name),
        artifacts,
        profile.ssh.port,
        HalfWrittenCard(rig.name),
        config_place(profile),
    )


def _twin_preflight(rig: Rig) -> None:
    _qemu_preflight(rig)
    _autohat_preflight(rig)


def _qemu_class() -> type:
    from hil.drivers.qemu.board import QemuBoard

    return QemuBoard


def _autohat_class() -> type:
    from hil.drivers.autohat import AutohatBoard

    return AutohatBoard


def _twin_class() -> type:
    from hil.drivers.twin import TwinBoard

    return TwinBoard


BOARD_KINDS: dict[str, BoardKind] = {
    "qemu": BoardKind(_qemu_preflight, _qemu_class, _qemu_board),
    "autohat": BoardKind(_autohat_preflight, _autohat_class, _autohat_board),
    "twin": BoardKind(_twin_preflight, _twin_class, _twin_board),
}


def rig_capabilities(rig: Rig) -> frozenset[str]:
    """What the rig can do beyond power, console and SSH: its board's capabilities and the rig file's."""
    network = getattr(rig.spec, "network", None)
    wifi = network is not None and network.wifi is not None
    return declared(BOARD_KINDS[rig.kind].board_class()) | frozenset(
        name for name in RIG_CAPABILITIES if name == "wifi" and wifi
    )


def rig_has(rig: Rig, capability: type) -> bool:
    """Whether the rig has `capability` (a protocol from hil.capabilities), without building its board."""
    return capability_name(capability) in rig_capabilities(rig)


def preflight(rig: Rig) -> None:
    """Raise ToolMissing now, rather than mid-test, when this host cannot drive the rig."""
    BOARD_KINDS[rig.kind].preflight(rig)


def make_board(rig: Rig, profile: OsProfile, artifacts: Path) -> Board:
    """Build the board for a rig from the kind table (no if/elif dispatch over kinds)."""
    return BOARD_KINDS[rig.kind].make(rig, profile, artifacts)
