"""Boot benchmark: plain QEMU to its serial login prompt vs hil to a logged-in console shell and to SSH.

Both boot the same image with the same machine options (taken from hil's own QEMU command line, minus
QMP and the paused start), in the same process, several rounds; prints medians and hil/raw ratios.
Targets (issue 2): console shell <= 1.10 x raw, SSH ready <= 1.25 x raw.

    .venv/bin/python bench/boot.py [--rounds 5] [--rig qemu-x86_64|qemu-arm64] [--image PATH]

Nothing here knows the architecture: the rig's board gives the command line (firmware, machine, CPU).
"""

from __future__ import annotations

import argparse
import select
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from hil.drivers.qemu.board import QemuBoard
from hil.dut.dut import State
from hil.dut.provision import open_dut, resolve_image
from hil.lab.rig import load_rig


def raw_command(board: QemuBoard) -> list[str]:
    """hil's QEMU command without QMP, -S and the console socket: serial on stdio instead."""
    command, out, skip = board._command(), [], 0
    for i, arg in enumerate(command):
        if skip:
            skip -= 1
        elif arg == "-S":
            continue
        elif arg in ("-qmp", "-chardev") or (arg == "-serial" and command[i + 1].startswith("chardev:")):
            skip = 1
        else:
            out.append(arg)
    return [*out, "-serial", "stdio"]


def raw_boot(board: QemuBoard) -> float:
    """Seconds from starting plain QEMU to 'login:' on its serial port."""
    start = time.monotonic()
    proc = subprocess.Popen(raw_command(board), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    seen = b""
    try:
        assert proc.stdout is not None
        while b"login:" not in seen:
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            if not ready:
                raise TimeoutError("raw QEMU showed no login prompt within 120 s")
            chunk = proc.stdout.read1(65536)
            if not chunk:
                raise RuntimeError("raw QEMU exited before its login prompt")
            seen = seen[-64:] + chunk
        return time.monotonic() - start
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    """Alternate raw and hil boots, then print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rig", default="qemu-x86_64")
    parser.add_argument("--image", type=Path)
    args = parser.parse_args()
    rig = load_rig(args.rig)
    image = resolve_image(rig, args.image)
    artifacts = Path(tempfile.mkdtemp(prefix="hil-bench-boot-"))
    dut = open_dut(rig, artifacts)
    raw, console, ssh = [], [], []
    try:
        for _ in range(args.rounds):
            dut.flash(image)
            board = dut.board
            assert isinstance(board, QemuBoard)
            raw.append(raw_boot(board))
            dut.flash(image)
            start = time.monotonic()
            dut.transition(State.BOOTED)
            console.append(time.monotonic() - start)
            dut.transition(State.READY)
            ssh.append(time.monotonic() - start)
            dut.transition(State.FLASHED)
    finally:
        dut.close()
        shutil.rmtree(artifacts, ignore_errors=True)
    base = statistics.median(raw)
    print(f"accel {dut.board.accel.name}: {dut.board.accel.reason}; {args.rounds} rounds")  # type: ignore[attr-defined]
    print(f"raw QEMU to login prompt   median {base:6.2f} s")
    for name, samples, target in (("hil console shell", console, 1.10), ("hil SSH ready", ssh, 1.25)):
        med = statistics.median(samples)
        print(f"{name:26} median {med:6.2f} s  ratio {med / base:5.2f} x raw  (target <= {target:.2f})")


if __name__ == "__main__":
    main()
