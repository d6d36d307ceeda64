"""The time-sync suite's DUTs: each flashed with the time sources its test needs and an RTC years back.

`synced_dut` (one boot for the module) points chrony at the rig's NTP server; the HTTPS and persisted-clock
tests flash their own DUT with NTP unreachable. Where the OS reads no ntpServers from config.json, the
rig's server is added at run time with `chronyc add server`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.dut import Dut
from hil.errors import HilError
from hil.services.chrony import TimeDut
from hil.services.fixtures import RigNetwork
from hil.services.ntp import NtpServer

RTC_PAST = "2020-01-01T00:00:00"


@pytest.fixture(scope="module")
def boot_for_time(_hil_dut: Dut, dut_image: Path) -> Iterator[Callable[[dict[str, Any]], TimeDut]]:
    """Flash the image under test with `config`, start its RTC years back where the board can, and boot."""

    def boot(config: dict[str, Any]) -> TimeDut:
        dut = _hil_dut
        try:
            dut.flash(dut_image, config)
            rtc_base = RTC_PAST if hasattr(dut.board, "rtc_base") else None
            if rtc_base:
                dut.board.rtc_base = rtc_base
            powered_at = time.time()
            dut.boot()
        except HilError as exc:
            pytest.fail(f"{type(exc).__name__}: {exc}", pytrace=False)
        return TimeDut(dut, rtc_base, powered_at)

    yield boot
    _hil_dut.flash(dut_image)  # later suites get the image as the plugin flashed it


@pytest.fixture(scope="module")
def synced_dut(
    _hil_dut: Dut, boot_for_time: Callable[[dict[str, Any]], TimeDut], ntp_server: NtpServer,
    rig_network: RigNetwork,
) -> TimeDut:  # fmt: skip
    """The DUT with the rig's NTP server as its only time source."""
    server = rig_network.address(ntp_server.port)
    takes_config = "config-ntp" in _hil_dut.profile.features
    booted = boot_for_time({"ntpServers": server} if takes_config else {})
    if not takes_config:
        host, port = server.rsplit(":", 1)
        booted.dut.run(f"{booted.dut.profile.chronyc} add server {host} port {port} iburst").check()
    return booted
