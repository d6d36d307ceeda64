"""`hil rig check`: prove a rig works end to end, step by step, and record its health for the pools."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hil.drivers.capabilities import PowerRelay, SdMuxControl, SerialLine, provided
from hil.dut.boards import Board
from hil.dut.dut import Dut, State
from hil.errors import HilError
from hil.lab.lab_store import CONSOLE_KEPT
from hil.lab.pool import record_health


@dataclass(frozen=True)
class Step:
    """One check: its name, whether it passed, and what was seen."""

    name: str
    ok: bool
    detail: str


def _power(board: Board) -> str:
    # mypy takes no protocol class where type[C] is expected (python/mypy#4717).
    switched = provided(board, PowerRelay)  # type: ignore[type-abstract]
    if switched is None:
        return "no relay on this rig (virtual board)"
    power = switched.relay()
    power.off()
    if power.state != "off":
        raise HilError(f"relay reads {power.state} after off")
    power.on()
    if power.state != "on":
        raise HilError(f"relay reads {power.state} after on")
    power.off()
    return "relay switches off -> on -> off"


def _mux(board: Board) -> str:
    # mypy takes no protocol class where type[C] is expected (python/mypy#4717).
    muxed = provided(board, SdMuxControl)  # type: ignore[type-abstract]
    if muxed is None:
        return "no SD mux on this rig (virtual board)"
    mux = muxed.sd_mux()
    card = mux.to_host(timeout=30)
    mux.to_dut()
    if mux.card.find() is not None:
        raise HilError(f"card {card.device} is still visible to the host with the mux on the DUT side")
    return f"card {card.device} ({card.size_bytes} bytes) appears on host, disappears on DUT side"


def _serial(board: Board) -> str:
    # mypy takes no protocol class where type[C] is expected (python/mypy#4717).
    if provided(board, SerialLine) is None:  # type: ignore[type-abstract]
        return "console is QEMU's serial socket (checked by the boot)"
    board.power_on(time.monotonic() + 30)
    transport = board.console_transport(10)
    try:
        deadline = time.monotonic() + 30
        received = b""
        while time.monotonic() < deadline and len(received) < 16:
            received += transport.read(0.5)
    finally:
        transport.close()
        board.power_off()
    if not received:
        raise HilError("the serial line stayed silent for 30 s after power-on")
    return f"{len(received)}+ bytes on the serial line after power-on"


def check_rig(dut: Dut, image: Path | None) -> list[Step]:
    """Run every check (a boot to login only when a known-good image is given) and record the verdict."""
    checks: list[tuple[str, Callable[[], str]]] = [
        ("power", lambda: _power(dut.board)),
        ("sd mux", lambda: _mux(dut.board)),
        ("serial", lambda: _serial(dut.board)),
    ]
    if image is not None:
        checks.append(("boot", lambda: _boot(dut, image)))
    began = _size(dut.transcript)
    steps = []
    for name, check in checks:
        try:
            steps.append(Step(name, True, check()))
        except HilError as exc:
            steps.append(Step(name, False, str(exc).splitlines()[0]))
    failed = [s for s in steps if not s.ok]
    reason = "; ".join(f"{s.name}: {s.detail}" for s in failed)
    record_health(dut.rig.name, not failed, reason, console=_printed_since(dut.transcript, began))
    return steps


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _printed_since(transcript: Path, began: int) -> bytes | None:
    """What the console printed since offset `began` (no more than the store keeps of it: its end, where a
    failure shows); None when silent."""
    try:
        with transcript.open("rb") as f:
            f.seek(max(began, f.seek(0, 2) - CONSOLE_KEPT))
            return f.read() or None
    except OSError:
        return None


def _boot(dut: Dut, image: Path) -> str:
    dut.flash(image)
    dut.boot()
    version = dut.os_version
    dut.transition(State.FLASHED)
    return f"login and SSH in {dut.boot_seconds:.1f} s (OS {version})"
