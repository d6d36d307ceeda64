"""Where a virtual board's RTC stands, so a QEMU process started after a guest reset carries it on.

QEMU runs the RTC from `-rtc base=` (utc, localtime or a date) with the host clock, and reports every
time the guest sets it with an RTC_CHANGE event whose offset is cumulative since the process started
(relative to the base plus the time since then). A new process given the RTC's current reading as its
base continues the clock the guest left, as a real board's RTC would across a reboot.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

QEMU_DATE = "%Y-%m-%dT%H:%M:%S"


def base_epoch(base: str, now: float) -> float:
    """The RTC reading at `now` (host epoch seconds) of a process just started with `-rtc base=BASE`."""
    if base == "utc":
        return now
    if base == "localtime":
        local = datetime.fromtimestamp(now).astimezone().utcoffset()
        return now + (local.total_seconds() if local else 0.0)
    # QEMU reads a date base as UTC (mktimegm); a date alone is its midnight.
    return datetime.fromisoformat(base).replace(tzinfo=UTC).timestamp()


class RtcClock:
    """One QEMU process's RTC: its base at start, and the offset the guest's writes added since."""

    def __init__(self, base: str) -> None:
        self.started = time.time()
        self.epoch_at_start = base_epoch(base, self.started)
        self.offset = 0.0

    def changed(self, offset: float) -> None:
        """QEMU's RTC_CHANGE event: the guest set its RTC; `offset` counts from the process's start."""
        self.offset = offset

    def base_now(self) -> str:
        """A `-rtc base=` value that starts a new process where this RTC reads now."""
        reading = self.epoch_at_start + (time.time() - self.started) + self.offset
        return datetime.fromtimestamp(round(reading), UTC).strftime(QEMU_DATE)
