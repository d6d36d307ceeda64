"""Where a boot's time went: firmware, bootloader, kernel, init and login, told apart on the console.

The firmware phase begins at power-on (or at the restart of a reboot). The bootloader, kernel and init
phases begin where their markers (the OS profile's `boot.phase_markers`) first show on the console after
the one before; the login phase begins when the console first offers a login (or a shell) and ends once
hil is logged in. A marker that never shows (no bootloader, a `quiet` kernel) leaves its phase out and
its time with the phase before, so the phases always add up to the whole boot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from hil.console.engine import Console

MarkedPhase = Literal["bootloader", "kernel", "init"]
# The phases that a console marker begins (the OS profile's `boot.phase_markers`), in boot order.
MARKED: tuple[MarkedPhase, ...] = ("bootloader", "kernel", "init")


def boot_phases(
    console: Console,
    since: int,
    markers: Mapping[MarkedPhase, str],
    *,
    begun: float,
    prompted: float | None,
    ended: float,
) -> dict[str, float]:
    """Seconds per phase of the boot whose console text starts at `since`, from `begun` to `ended`.

    Times are seconds after power-on; `prompted` is when the console first offered a login, if it did.
    """
    text = console.text_since(since)
    starts = [("firmware", begun)]
    at = 0
    for name in MARKED:
        if name in markers and (match := re.compile(markers[name], re.MULTILINE).search(text, at)):
            starts.append((name, max(starts[-1][1], console.seconds_at(since + match.start()))))
            at = match.end()
    if prompted is not None:
        starts.append(("login", max(starts[-1][1], prompted)))
    ends = [start for _, start in starts[1:]] + [max(ended, starts[-1][1])]
    return {name: round(end - start, 3) for (name, start), end in zip(starts, ends, strict=True)}
