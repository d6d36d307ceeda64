"""A virtual board's machine: what QEMU is started with, as plain values."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Machine:
    """How a virtual board is started, as plain values (a rig file's `qemu:` section says them)."""

    arch: str = "x86_64"
    machine: str = "q35"
    cpu: str | None = None
    memory: int = 256  # MiB
    cpus: int = 1
    accel: str = "auto"
    rtc_base: str | None = None
    internal_disk: int | None = None  # bytes: the disk a flasher image installs onto; None: no such disk
