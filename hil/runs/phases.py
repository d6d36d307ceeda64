"""Boot phases of a run: how long each part of the first boot took, from what the run left behind.

Two sources, each read only when present:
- the kernel's own printk timestamps in the console transcript (`[    1.234567] ...`, on whenever the
  kernel is not `quiet`) give the `kernel` phase: kernel start to the moment it runs init;
- JUnit properties `hil.boot_phase.NAME` (seconds) give any phase the session measured itself. The
  console transcript carries no host time yet; once it does, the plugin records firmware, bootloader,
  init and login that way, and they land here with no change to the store or the dashboard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

PHASE_PROPERTY = "hil.boot_phase."
_PRINTK = re.compile(rb"^\[\s*(\d{1,6}\.\d{6})\] (.*)$")
# What the kernel prints as it hands over to user space (an initramfs, or the root's init).
_INIT = re.compile(rb"Run /\S+ as init process|Freeing unused kernel (image )?memory")
# Enough of a transcript to hold the first boot's kernel messages.
_HEAD = 4 << 20


def kernel_seconds(transcript: Path) -> float | None:
    """Seconds from kernel start to init on the first boot in `transcript`, or None if it does not say."""
    try:
        with transcript.open("rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return None
    for raw in head.splitlines():
        line = raw.strip(b"\r").lstrip(b"\x00")
        match = _PRINTK.match(line[line.find(b"[") :] if b"[" in line else line)
        if match and _INIT.search(match.group(2)):
            return float(match.group(1))
    return None


def boot_phases(transcripts: Iterable[Path], timings: Iterable[tuple[str, float]]) -> dict[str, float]:
    """The first boot's phases: `hil.boot_phase.NAME` measurements first, the kernel from the transcript."""
    phases: dict[str, float] = {}
    for name, seconds in timings:  # in test order: the first test that booted has the first boot's
        if name.startswith(PHASE_PROPERTY):
            phases.setdefault(name.removeprefix(PHASE_PROPERTY), seconds)
    if "kernel" not in phases:
        for transcript in transcripts:
            if (kernel := kernel_seconds(transcript)) is not None:
                phases["kernel"] = kernel
                break
    return phases
