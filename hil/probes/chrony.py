"""chrony on the DUT, as the time-sync suite reads and steers it (any OS whose profile names chronyc)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hil.dut import Dut
from hil.probes.queries import wait_for


@dataclass(frozen=True)
class TimeDut:
    """A booted DUT and how it was set up."""

    dut: Dut
    rtc_base: str | None  # where its RTC started (None: the board cannot set it)
    powered_at: float  # host time just before power-on


@dataclass(frozen=True)
class Source:
    """One line of `chronyc -c sources`."""

    state: str  # * selected, + combined, - not combined, ? unreachable, x falseticker, ~ too variable
    address: str
    reach: int  # the reachability register: one bit per poll, 1 = answered

    @property
    def selected(self) -> bool:
        """chrony synchronises to this source."""
        return self.state == "*"

    @property
    def reachable(self) -> bool:
        """chrony has had an answer within its last eight polls."""
        return self.state != "?" and self.reach != 0


def chrony_sources(dut: Dut) -> list[Source]:
    """chrony's sources on the DUT ([] when chronyd does not answer)."""
    sources = []
    for line in dut.run(f"{dut.profile.time.chronyc} -c -n sources").output.splitlines():
        fields = line.split(",")
        if len(fields) >= 6 and fields[0] in "^=#":
            sources.append(Source(fields[1], fields[2], int(fields[5], 8)))
    return sources


def chrony_tracking(dut: Dut) -> dict[str, str]:
    """`chronyc tracking` as field -> value, or {"error": what chronyc said} when chronyd does not answer."""
    out = dut.run(f"{dut.profile.time.chronyc} -n tracking")
    fields = dict(line.split(" : ", 1) for line in out.output.splitlines() if " : " in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields if out.ok and fields else {"error": out.output.strip() or f"exit {out.exit_code}"}


def await_sync(dut: Dut, server: str) -> float:
    """Seconds until chrony selects a source; fails naming the missing sync after the profile's bound."""
    bound = dut.profile.bounds.ntp_sync
    selected, waited = wait_for(lambda: [s for s in chrony_sources(dut) if s.selected], bound)
    if not selected:
        tracking = chrony_tracking(dut)
        pytest.fail(
            f"no NTP sync: chrony on the DUT selected no source within {bound:.0f} s "
            f"(the rig's server is {server}); "
            f"chronyc tracking: {tracking.get('error') or tracking.get('Leap status')}; "
            f"sources: {chrony_sources(dut) or 'none'}",
            pytrace=False,
        )
    return waited


@contextlib.contextmanager
def fast_polling(dut: Dut, address: str) -> Iterator[None]:
    """chrony polls `address` every 2 s inside the block, then its defaults (64 s to 1024 s) again.

    What is checked is chrony's own reaction (a source lost, found, a step detected); at the default
    intervals each would take minutes of waiting for the next poll.
    """
    chronyc = dut.profile.time.chronyc
    # A new interval applies from the next poll, which may be a minute away: a one-sample burst polls now
    # and reschedules.
    dut.run(
        f"{chronyc} minpoll {address} 1 && {chronyc} maxpoll {address} 1 && {chronyc} burst 1/1 {address}"
    ).check()
    try:
        yield
    finally:
        dut.run(f"{chronyc} maxpoll {address} 10; {chronyc} minpoll {address} 6")
