"""What the suites ask a DUT about its network and clock, through the OS profile's commands."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from hil.dut import Dut
from hil.errors import HilError

T = TypeVar("T")


def wait_for(check: Callable[[], T], bound: float, interval: float = 1.0) -> tuple[T, float]:
    """Call `check` until it returns something truthy or `bound` seconds pass: (last value, seconds taken)."""
    start = time.monotonic()
    while True:
        value = check()
        waited = time.monotonic() - start
        if value or waited >= bound:
            return value, waited
        time.sleep(min(interval, max(0.0, bound - waited)))


def run_on(dut: Dut, command: str, console: bool) -> str:
    """A command's output, whatever its status: over SSH, or on the console when the network is suspect."""
    return (dut.console_run(command) if console else dut.run(command)).output


# The default route's interface; before there is one (no lease yet), the first interface backed by a
# device, which leaves out loopback, bridges and the virtual interfaces container engines add.
_WIRED = (
    "ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == \"dev\") {print $(i + 1); exit}}' "
    '| grep . || for i in /sys/class/net/*; do [ -e "$i/device" ] && echo "${i##*/}"; done | head -n 1'
)


def wired_interface(dut: Dut, console: bool = False) -> str:
    """The DUT's wired interface: the profile's, else the default route's (or the first real device's)."""
    if dut.profile.network.wired_interface:
        return dut.profile.network.wired_interface
    out = run_on(dut, _WIRED, console).strip().splitlines()
    if not out:
        raise HilError(f"{dut.rig.name}: no network interface backed by a device on the DUT")
    return out[0]


def ipv4_lease(dut: Dut, interface: str, console: bool = False) -> ipaddress.IPv4Interface | None:
    """The IPv4 address (with prefix) on `interface`, or None."""
    for line in run_on(dut, f"ip -4 -o addr show dev {interface}", console).splitlines():
        fields = line.split()
        if "inet" in fields:
            return ipaddress.IPv4Interface(fields[fields.index("inet") + 1])
    return None


def default_route(dut: Dut) -> tuple[str, str] | None:
    """(gateway, device) of the IPv4 default route, or None."""
    for line in dut.run("ip -4 route show default").output.splitlines():
        fields = line.split()
        if fields[:1] == ["default"] and "via" in fields and "dev" in fields:
            return fields[fields.index("via") + 1], fields[fields.index("dev") + 1]
    return None


def carrier(dut: Dut, interface: str) -> str:
    """The interface's carrier as the kernel sees it ("1" up, "0" down), read on the console."""
    return dut.console_run(f"cat /sys/class/net/{interface}/carrier 2>/dev/null").output.strip()


@dataclass(frozen=True)
class ClockReading:
    """The DUT's clock against the host's, read over SSH."""

    offset: float  # DUT minus host, seconds, against the middle of the round trip
    uncertainty: float  # half the round trip

    def within(self, tolerance: float) -> bool:
        """True when the clocks agree to `tolerance` seconds (plus what the round trip leaves unknown)."""
        return abs(self.offset) <= tolerance + self.uncertainty


def read_clock(dut: Dut) -> ClockReading:
    """Read the DUT's clock once through the profile's clock command."""
    before = time.time()
    out = dut.run(dut.profile.time.clock_command).check().output.strip()
    after = time.time()
    return ClockReading(float(out.split()[-1]) - (before + after) / 2, (after - before) / 2)
