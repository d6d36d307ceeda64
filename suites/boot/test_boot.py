"""Boot suite: the image reaches a console login and SSH, is the image we flashed, is laid out and healthy,
and comes back from a warm reboot and a cold power cycle on the same root.

Every OS-specific fact comes from the OS profile; a test that needs what the OS lacks is skipped naming it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hil.dut import Dut
from hil.dut.provision import image_version
from hil.images.partitions import partition_uuids

KERNEL_TROUBLE = re.compile(r"Oops|BUG:|Call Trace|Kernel panic|[Ff]ailed to mount|mount: .*failed")


def _out(dut: Dut, command: str) -> str:
    return dut.run(command).check().output.strip()


def _mounts(dut: Dut) -> dict[str, list[str]]:
    """Mount point -> its options, from /proc/mounts (the last mount on a point wins)."""
    mounts: dict[str, list[str]] = {}
    for line in dut.run("cat /proc/mounts").check().output.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            mounts[fields[1]] = fields[3].split(",")
    return mounts


def test_boots_to_ssh(dut: Dut, record_property) -> None:
    record_property("hil.boot_seconds", f"{dut.boot_seconds:.2f}")
    assert dut.run("echo ssh-ok").check().output.strip() == "ssh-ok"
    bound = dut.profile.bounds.boot_to_ssh  # a boot that stalls is a broken boot, however it ends
    assert dut.boot_seconds <= bound, (
        f"boot to the login took {dut.boot_seconds:.0f} s, over the OS profile's bound of {bound:.0f} s"
    )


def test_logs_in_on_the_serial_console(console_dut: Dut) -> None:
    assert console_dut.console_run("echo console-ok").check().output.strip() == "console-ok"


@pytest.mark.requires_os("image-identity")
def test_runs_the_image_that_was_flashed(dut: Dut, dut_image: Path) -> None:
    identity, version = dut.profile.identity, image_version(dut_image, dut.profile)
    checked = []
    if identity.slug_command:
        assert _out(dut, identity.slug_command) == dut.rig.device_type
        checked.append("device type")
    if identity.version_command and version:
        assert _out(dut, identity.version_command) == version
        checked.append("version")
    if identity.root_partuuid_command:
        root = _out(dut, identity.root_partuuid_command).lower()
        image = partition_uuids(dut_image)
        assert root in image, f"the root partition {root} is none of the image's partitions {sorted(image)}"
        checked.append("root partition")
    if not checked:
        pytest.fail(f"{dut_image} states no version and OS profile {dut.profile.name!r} no device type or "
                    "root PARTUUID: nothing shows which image runs")  # fmt: skip


@pytest.mark.requires_os("ab-update")
def test_booted_from_the_partition_the_boot_environment_names(dut: Dut) -> None:
    booted = _out(dut, dut.profile.boot.root_command)
    named = _out(dut, dut.profile.update.slot_command)
    assert booted and booted == named


def test_mounts_are_as_the_os_profile_says(dut: Dut) -> None:
    mounts = _mounts(dut)
    for point, mode in dut.profile.layout.mounts.items():
        assert point in mounts, f"{point} is not mounted"
        assert mode in mounts[point], f"{point} is mounted {mounts[point]}, expected {mode}"


@pytest.mark.requires_os("config-hostname")
def test_hostname_comes_from_config_json(dut: Dut) -> None:
    hostname, wanted = _out(dut, dut.profile.identity.hostname_command), dut.config["hostname"]
    assert hostname == wanted, f"the hostname is {hostname!r}, not {wanted!r} as config.json says"


@pytest.mark.parametrize("role", ["ssh", "time"])
def test_system_services_are_running(dut: Dut, role: str) -> None:
    service = dut.profile.services.roles[role]
    check = dut.profile.services.check.render(name=service)
    result = dut.run(check)
    assert result.ok, f"the {role} service {service!r} is not running (`{check}` exited {result.exit_code})"


@pytest.mark.requires_os("failed-units")
def test_no_service_failed(dut: Dut) -> None:
    failed = _out(dut, dut.profile.services.failed_command)
    assert not failed, f"failed services:\n{failed}"


def test_kernel_log_has_no_oops_panic_or_failed_mount(dut: Dut) -> None:
    trouble = [line for line in dut.run("dmesg").check().output.splitlines() if KERNEL_TROUBLE.search(line)]
    assert not trouble, "kernel log shows trouble:\n" + "\n".join(trouble)


def test_survives_a_warm_reboot_on_the_same_root(dut: Dut) -> None:
    before = _out(dut, dut.profile.boot.root_command)
    dut.reboot()
    assert _out(dut, dut.profile.boot.root_command) == before


def test_survives_a_cold_power_cycle_on_the_same_root(dut: Dut, record_property) -> None:
    before = _out(dut, dut.profile.boot.root_command)
    dut.power_cycle()
    record_property("hil.boot_seconds_cold", f"{dut.boot_seconds:.2f}")
    assert _out(dut, dut.profile.boot.root_command) == before
