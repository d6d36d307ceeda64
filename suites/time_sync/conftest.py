"""The time-sync suite's DUTs: each flashed with the time sources its test needs and, where the rig can
start the RTC at a chosen time, an RTC years in the past.

`synced_dut` (one boot for the module) points the OS's time service at the rig's NTP server, the way
its profile says (config.json, or a drop-in applied over SSH and removed afterwards); where the OS
offers neither, the tests that need it are skipped naming the missing feature.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hil.capabilities import RtcControl
from hil.dut import Dut
from hil.probes.chrony import TimeDut
from hil.probes.rig_servers import rig_server_applied, rig_server_config
from hil.pytestplugin.servers import RigNetwork
from hil.services.ntp import NtpServer

RTC_PAST = "2020-01-01T00:00:00"


@pytest.fixture(scope="module")
def boot_for_time(reflash_dut: Callable[..., Dut]) -> Callable[[dict[str, Any]], TimeDut]:
    """Flash the image under test with `config`, start its RTC years back where the rig can, and boot."""

    def boot(config: dict[str, Any]) -> TimeDut:
        rtc: list[str] = []

        def rtc_in_the_past(dut: Dut) -> None:
            if rtc_control := dut.capability(RtcControl):
                rtc_control.set_rtc_base(RTC_PAST)
                rtc.append(RTC_PAST)

        powered_at = time.time()
        dut = reflash_dut(config, before_boot=rtc_in_the_past)
        return TimeDut(dut, rtc[0] if rtc else None, powered_at)

    return boot


@pytest.fixture(scope="module")
def synced_dut(
    hil_dut: Dut, boot_for_time: Callable[[dict[str, Any]], TimeDut], ntp_server: NtpServer,
    rig_network: RigNetwork,
) -> Iterator[TimeDut]:  # fmt: skip
    """The DUT with the rig's NTP server as its only time source."""
    hil_dut.require_os("rig-ntp")
    ntp = hil_dut.profile.time.rig_ntp
    address = rig_network.address(ntp_server.port)
    booted = boot_for_time(rig_server_config(ntp, "ntp", address))
    with rig_server_applied(booted.dut, ntp, address):
        yield booted
