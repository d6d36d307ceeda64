"""The RTC a restarted virtual board continues from: QEMU's base plus time since, plus the guest's sets."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from hil.drivers.qemu.rtc import RtcClock, base_epoch


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_a_utc_base_reads_the_host_clock() -> None:
    assert base_epoch("utc", 1_800_000_000.0) == 1_800_000_000.0


def test_a_date_base_is_read_as_utc_and_a_bare_date_as_its_midnight() -> None:
    assert base_epoch("2020-01-01T00:00:00", time.time()) == _epoch("2020-01-01T00:00:00")
    assert base_epoch("2020-01-01", time.time()) == _epoch("2020-01-01T00:00:00")


def test_a_restart_continues_from_a_date_base_plus_the_time_since() -> None:
    clock = RtcClock("2020-01-01T00:00:00")
    clock.started -= 90  # the process has run for a minute and a half
    assert abs(_epoch(clock.base_now()) - _epoch("2020-01-01T00:01:30")) <= 1


def test_a_restart_keeps_what_the_guest_set() -> None:
    clock = RtcClock("utc")
    clock.changed(10 * 365 * 86400)  # the guest set its RTC ten years ahead
    assert abs(_epoch(clock.base_now()) - (time.time() + 10 * 365 * 86400)) <= 2
    clock.changed(-3600)  # QEMU's offsets are cumulative since the start, not increments
    assert abs(_epoch(clock.base_now()) - (time.time() - 3600)) <= 2
