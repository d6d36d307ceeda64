"""Board capabilities: what a rig can do beyond power, console and SSH, as small typed protocols.

A board class declares what it provides in `provides`; a test asks `dut.require(LinkControl)` and gets
the board typed as that protocol, or is skipped naming what the rig lacks. Nothing probes attributes
by name, so a misspelling is an error, not a silent skip. Rig-level capabilities (a wifi access point
the rig runs) come from the rig file.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeVar, cast, runtime_checkable

if TYPE_CHECKING:
    from hil.drivers.power import RelayPower
    from hil.drivers.sdmux import SdMux as SdMuxDriver

C = TypeVar("C")


@runtime_checkable
class LinkControl(Protocol):
    """Plug and unplug the DUT's network cable."""

    name: ClassVar[str] = "link-control"

    def set_link(self, up: bool) -> None:
        """Plug (True) or unplug (False) the cable."""
        ...


@runtime_checkable
class NetworkCapture(Protocol):
    """Record the DUT's network traffic."""

    name: ClassVar[str] = "network-capture"

    def capture_network(self, pcap: Path) -> AbstractContextManager[Path]:
        """Write the traffic into `pcap` while inside the context."""
        ...


@runtime_checkable
class RtcControl(Protocol):
    """Start the DUT's real-time clock at a chosen time (until the next flash)."""

    name: ClassVar[str] = "rtc-control"

    def set_rtc_base(self, base: str) -> None:
        """The RTC starts at `base` (ISO 8601, UTC) from the next power-on."""
        ...


@runtime_checkable
class PowerRelay(Protocol):
    """A relay that switches the DUT's supply and reads back its state; it holds between processes."""

    name: ClassVar[str] = "power-relay"
    off_time: float  # seconds the supply needs off to drain before the next power-on

    def relay(self) -> RelayPower:
        """The relay driver (on, off, state)."""
        ...


@runtime_checkable
class SdMuxControl(Protocol):
    """An SD mux: the DUT's card switches to the host to be written, and back to the DUT."""

    name: ClassVar[str] = "sd-mux"

    def sd_mux(self) -> SdMuxDriver:
        """The mux driver (to_host, to_dut, the card it switches)."""
        ...


@runtime_checkable
class SerialLine(Protocol):
    """The console is a serial line the host reads, which speaks as soon as the DUT has power."""

    name: ClassVar[str] = "serial-line"

    def serial_port(self) -> str:
        """The host's device for the line (e.g. /dev/serial/by-id/...)."""
        ...


@runtime_checkable
class HostedNetwork(Protocol):
    """The DUT's network is one hil runs on this host (QEMU user networking), so the suites can start
    the rig-side servers (DHCP, DNS, NTP, HTTP) themselves."""

    name: ClassVar[str] = "hosted-network"

    def host_address(self) -> str:
        """The address at which the DUT reaches this host."""
        ...


@runtime_checkable
class BootSnapshots(Protocol):
    """Save a booted DUT whole (memory, devices, disk) and start from that state again: a freshly
    flashed, booted device in seconds instead of a flash and a boot."""

    name: ClassVar[str] = "boot-snapshots"

    def save_snapshot(self, key: str) -> None:
        """Save the running machine as `key`."""
        ...

    def has_snapshot(self, key: str) -> bool:
        """Whether a snapshot saved as `key` is kept."""
        ...

    def restore_snapshot(self, key: str, deadline: float) -> None:
        """Power off, then run the machine saved as `key` from where it was saved."""
        ...


@runtime_checkable
class BootCounter(Protocol):
    """Count the DUT's boots as the board starts them (a power-on, a reset), with nothing read from the
    DUT: a reboot shows even where the OS prints nothing on its console (balenaOS's `console=null quiet`)."""

    name: ClassVar[str] = "boot-counter"

    def boots_started(self) -> int:
        """How many boots the board has started since it was made; the count never goes back."""
        ...


BOARD_CAPABILITIES: tuple[type, ...] = (
    LinkControl,
    NetworkCapture,
    RtcControl,
    PowerRelay,
    SdMuxControl,
    SerialLine,
    HostedNetwork,
    BootSnapshots,
    BootCounter,
)
# Capabilities a rig file gives (not a board method): name -> what it means.
RIG_CAPABILITIES = {"wifi": "a wifi access point the DUT can join"}


def capability_name(capability: type) -> str:
    """The name a capability protocol declares (`LinkControl` -> "link-control")."""
    # Each protocol has a ClassVar `name`; a tuple of them can only be typed `type` (mypy refuses protocol
    # classes where type[SomeProtocol] is expected), which has no `name`.
    name: str = capability.name  # type: ignore[attr-defined]
    return name


CAPABILITIES = {capability_name(c): c for c in BOARD_CAPABILITIES}
NAMES = frozenset(CAPABILITIES) | frozenset(RIG_CAPABILITIES)


def provided(board: object, capability: type[C]) -> C | None:
    """`board` as `capability` when its class declares it, else None (never a probe by attribute name)."""
    return cast(C, board) if capability in getattr(type(board), "provides", ()) else None


def declared(board_class: type) -> frozenset[str]:
    """The capability names a board class declares; each must really implement its protocol."""
    provides: tuple[type, ...] = getattr(board_class, "provides", ())
    for capability in provides:
        missing = [m for m in _methods(capability) if not callable(getattr(board_class, m, None))]
        if missing:
            raise TypeError(
                f"{board_class.__name__} declares {capability_name(capability)} but has no {missing[0]}()"
            )
    return frozenset(capability_name(c) for c in provides)


def _methods(protocol: type) -> list[str]:
    return [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]
