"""Boot suite: the image reaches a login and SSH, is the image we flashed, is laid out and healthy, and
comes back from a warm reboot and a cold power cycle on the same root partition."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hil.dut import Dut
from hil.image import read_info

KERNEL_TROUBLE = re.compile(r"Oops|BUG:|Call Trace|Kernel panic|[Ff]ailed to mount|mount: .*failed")


def _mounts(dut: Dut) -> dict[str, list[str]]:
    """Mount point -> its options, from /proc/mounts (the last mount on a point wins)."""
    mounts: dict[str, list[str]] = {}
    for line in dut.run("cat /proc/mounts").check().output.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            mounts[fields[1]] = fields[3].split(",")
    return mounts


def test_boots_to_a_console_login_and_ssh(dut: Dut, record_property) -> None:
    record_property("hil.boot_seconds", f"{dut.boot_seconds:.2f}")
    assert dut.run("echo ssh-ok").check().output.strip() == "ssh-ok"
    assert dut.console_run("echo console-ok").check().output.strip() == "console-ok"


def test_runs_the_image_that_was_flashed(dut: Dut, dut_image: Path) -> None:
    info = read_info(dut_image)
    assert dut.run(dut.profile.slug_command).check().output.strip() == dut.rig.device_type
    if info.version:
        assert dut.run(dut.profile.version_command).check().output.strip() == info.version


def test_booted_from_the_partition_the_boot_environment_names(dut: Dut) -> None:
    booted = dut.run(dut.profile.booted_slot_command).check().output.strip()
    named = dut.run(dut.profile.env_slot_command).check().output.strip()
    assert booted and booted == named


def test_root_is_read_only_and_state_and_data_are_writable(dut: Dut) -> None:
    mounts = _mounts(dut)
    for point, mode in dut.profile.mounts.items():
        assert point in mounts, f"{point} is not mounted"
        assert mode in mounts[point], f"{point} is mounted {mounts[point]}, expected {mode}"


def test_hostname_comes_from_config_json(dut: Dut) -> None:
    assert dut.run(dut.profile.hostname_command).check().output.strip() == dut.config["hostname"]


@pytest.mark.parametrize("role", ["ssh", "time"])
def test_system_services_are_running(dut: Dut, role: str) -> None:
    dut.run(f"pidof {dut.profile.services[role]}").check()


def test_kernel_log_has_no_oops_panic_or_failed_mount(dut: Dut) -> None:
    trouble = [line for line in dut.run("dmesg").check().output.splitlines() if KERNEL_TROUBLE.search(line)]
    assert not trouble, "kernel log shows trouble:\n" + "\n".join(trouble)


def test_survives_a_warm_reboot_on_the_same_partition(dut: Dut) -> None:
    before = dut.run(dut.profile.booted_slot_command).check().output.strip()
    dut.reboot()
    assert dut.run(dut.profile.booted_slot_command).check().output.strip() == before


def test_survives_a_cold_power_cycle_on_the_same_partition(dut: Dut, record_property) -> None:
    before = dut.run(dut.profile.booted_slot_command).check().output.strip()
    dut.power_cycle()
    record_property("hil.boot_seconds_cold", f"{dut.boot_seconds:.2f}")
    assert dut.run(dut.profile.booted_slot_command).check().output.strip() == before
