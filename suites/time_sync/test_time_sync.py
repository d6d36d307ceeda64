"""Time-sync suite: from an RTC years in the past the DUT syncs to the rig's NTP server (never the
internet); it notices the server going away and coming back, corrects a clock stepped by minutes, keeps
its clock across a reboot without RTC or NTP, takes the time from an HTTPS Date header when NTP is
unreachable, and starts time-dependent services only once the clock is set.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from hil.dut import Dut
from hil.probes.chrony import TimeDut, await_sync, chrony_sources, chrony_tracking, fast_polling
from hil.probes.queries import read_clock, wait_for
from hil.pytestplugin.servers import RigNetwork
from hil.services.http import HttpServer
from hil.services.ntp import NtpServer
from hil.services.tls import ServerIdentity

ISO_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _boot_log(dut: Dut) -> list[str]:
    return dut.run(dut.profile.boot.log_command).check().output.splitlines()


@pytest.mark.requires("rtc-control")
def test_syncs_to_the_rigs_server_from_an_rtc_years_in_the_past(
    synced_dut: TimeDut, ntp_server: NtpServer, rig_network: RigNetwork, record_property
) -> None:
    dut = synced_dut.dut
    assert synced_dut.rtc_base is not None
    assert any(synced_dut.rtc_base[:10] in line for line in _boot_log(dut)), (
        f"the boot log never shows the clock at {synced_dut.rtc_base[:10]}: did the RTC start there?"
    )
    record_property(
        "hil.ntp_sync_seconds_after_ssh", f"{await_sync(dut, rig_network.address(ntp_server.port)):.1f}"
    )
    selected = [s for s in chrony_sources(dut) if s.selected]
    assert [s.address for s in selected] == [rig_network.host]
    tracking = chrony_tracking(dut)
    assert rig_network.host in tracking.get("Reference ID", ""), tracking
    assert tracking.get("Leap status") == "Normal", tracking
    clock, tolerance = read_clock(dut), dut.profile.bounds.clock_tolerance
    assert clock.within(tolerance), (
        f"DUT clock is {clock.offset:+.3f} s off the host's (tolerance {tolerance} s)"
    )


def test_loses_its_source_while_the_rigs_server_is_down_and_resyncs_after(
    synced_dut: TimeDut, ntp_server: NtpServer, rig_network: RigNetwork, record_property
) -> None:
    dut = synced_dut.dut
    await_sync(dut, rig_network.address(ntp_server.port))
    bounds = dut.profile.bounds
    with fast_polling(dut, rig_network.host):
        with ntp_server.offline():
            bound = bounds.ntp_offline
            lost, _ = wait_for(lambda: not any(s.reachable for s in chrony_sources(dut)), bound, interval=2)
            assert lost, (
                f"chrony still reports a reachable source {bound:.0f} s after the rig's server stopped"
            )
            first = read_clock(dut)
            time.sleep(1)
            second = read_clock(dut)
            # Offsets against the host, so the DUT's clock went forward by about the host's second.
            assert second.offset > first.offset - 1, "the DUT's clock went backwards without a source"
            holdover = bounds.holdover_tolerance
            assert second.within(holdover), f"without a source the clock drifted {second.offset:+.3f} s"
        bound = bounds.ntp_resync
        back, waited = wait_for(lambda: any(s.selected for s in chrony_sources(dut)), bound, interval=2)
        assert back, f"chrony did not select the rig's server again within {bound:.0f} s of its return"
    record_property("hil.ntp_resync_seconds", f"{waited:.1f}")
    clock, tolerance = read_clock(dut), bounds.clock_tolerance
    assert clock.within(tolerance), f"DUT clock is {clock.offset:+.3f} s off after the resync"


@pytest.mark.requires_os("steps-clock")
def test_corrects_a_clock_stepped_by_minutes(
    synced_dut: TimeDut, ntp_server: NtpServer, rig_network: RigNetwork, record_property
) -> None:
    dut = synced_dut.dut
    await_sync(dut, rig_network.address(ntp_server.port))
    step = 300
    tolerance, bound = dut.profile.bounds.clock_tolerance, dut.profile.bounds.skew_correction
    with fast_polling(dut, rig_network.host):
        dut.run(f"date -s @$(($(date +%s) + {step}))").check()
        assert read_clock(dut).offset > step / 2, "the step did not take"
        corrected, waited = wait_for(lambda: read_clock(dut).within(tolerance), bound, interval=2)
    clock = read_clock(dut)
    assert corrected, (
        f"the DUT's clock is still {clock.offset:+.1f} s off {bound:.0f} s after a {step} s step"
    )
    record_property("hil.skew_correction_seconds", f"{waited:.1f}")


@pytest.mark.requires_os("time-ordering")
def test_time_dependent_services_start_only_after_the_clock_is_set(synced_dut: TimeDut) -> None:
    dut, patterns = synced_dut.dut, synced_dut.dut.profile.time
    log = _boot_log(dut)
    set_at = next((i for i, line in enumerate(log) if re.search(patterns.set_pattern, line)), None)
    started_at = next((i for i, line in enumerate(log) if re.search(patterns.dependent_pattern, line)), None)
    assert set_at is not None, "the boot log never says the clock was set"
    assert started_at is not None, "the boot log never shows a time-dependent service starting"
    assert set_at < started_at, f"started before the clock was set:\n{log[started_at]}\n{log[set_at]}"
    stamp = ISO_STAMP.search(log[started_at])
    assert stamp, log[started_at]
    started = datetime.fromisoformat(stamp.group().replace("Z", "+00:00")).timestamp()
    assert started >= math.floor(synced_dut.powered_at), (
        f"it started on a clock still in the past: {stamp.group()}"
    )


@pytest.mark.requires("rtc-control")
@pytest.mark.requires_os("https-time")
def test_sets_its_clock_from_an_https_date_header_when_ntp_is_unreachable(
    boot_for_time: Callable[[dict[str, Any]], TimeDut], https_server: HttpServer,
    server_identity: ServerIdentity, rig_network: RigNetwork, record_property,
) -> None:  # fmt: skip
    booted = boot_for_time({
        "ntpServers": rig_network.unreachable(),
        "apiEndpoint": https_server.url(host=rig_network.host).rstrip("/"),
        "balenaRootCA": server_identity.ca_base64,
    })  # fmt: skip
    dut = booted.dut
    bound = dut.profile.bounds.https_time

    def set_by_https() -> list[str]:
        return [line for line in _boot_log(dut) if re.search(dut.profile.time.https_pattern, line)]

    lines, _ = wait_for(set_by_https, max(0.0, bound - (time.time() - booted.powered_at)))
    assert lines, f"the clock was not set from {https_server.url(host=rig_network.host)} within {bound:.0f} s"
    clock, tolerance = read_clock(dut), dut.profile.bounds.https_time_tolerance
    assert clock.within(tolerance), f"after the HTTPS time sync the clock is {clock.offset:+.2f} s off"
    record_property("hil.https_time_offset_seconds", f"{clock.offset:+.2f}")


@pytest.mark.requires("rtc-control")
@pytest.mark.requires_os("persisted-clock")
def test_keeps_its_saved_clock_across_a_reboot_without_rtc_or_ntp(
    boot_for_time: Callable[[dict[str, Any]], TimeDut], rig_network: RigNetwork
) -> None:
    booted = boot_for_time({"ntpServers": rig_network.unreachable()})
    dut = booted.dut
    set_to = math.ceil(time.time())
    dut.run(f"date -s @{set_to}").check()  # as if it had synced once; the RTC stays years back
    dut.reboot()
    clock = read_clock(dut)
    now = time.time()
    dut_time = now + clock.offset
    assert dut_time >= set_to - clock.uncertainty, (
        f"after the reboot the clock reads {datetime.fromtimestamp(dut_time).isoformat()}, earlier than the "
        f"{datetime.fromtimestamp(set_to).isoformat()} it had before"
    )
    assert dut_time <= now + clock.uncertainty, "after the reboot the clock is ahead of the host's"
