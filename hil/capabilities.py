"""Board capabilities: what a rig can do beyond power, console and SSH, as small typed protocols.

A board class declares what it provides in `provides`; a test asks `dut.require(LinkControl)` and gets
the board typed as that protocol, or is skipped naming what the rig lacks. Nothing probes attributes
by name, so a misspelling is an error, not a silent skip. Rig-level capabilities (a wifi access point
the rig runs) come from the rig file.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable


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


BOARD_CAPABILITIES: tuple[type, ...] = (LinkControl, NetworkCapture, RtcControl)
# Capabilities a rig file gives (not a board method): name -> what it means.
RIG_CAPABILITIES = {"wifi": "a wifi access point the DUT can join"}
CAPABILITIES = {c.name: c for c in BOARD_CAPABILITIES}  # type: ignore[attr-defined]
NAMES = frozenset(CAPABILITIES) | frozenset(RIG_CAPABILITIES)


def declared(board_class: type) -> frozenset[str]:
    """The capability names a board class declares; each must really implement its protocol."""
    provides: tuple[type, ...] = getattr(board_class, "provides", ())
    for capability in provides:
        missing = [m for m in _methods(capability) if not callable(getattr(board_class, m, None))]
        if missing:
            raise TypeError(f"{board_class.__name__} declares {capability.name} but has no {missing[0]}()")
    return frozenset(c.name for c in provides)  # type: ignore[attr-defined]


def _methods(protocol: type) -> list[str]:
    return [n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")]
