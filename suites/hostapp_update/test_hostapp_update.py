"""Hostapp-update suite: a host OS update lands in the other root and keeps the user's data, a broken
update rolls itself back (health check, a root that never boots, a kernel that panics), a power cut
mid-write leaves the old OS, and bundles that do not fit are refused. Every test starts from the freshly
flashed base image (see conftest.py for how base and target are chosen); every wait is bounded by the
OS profile."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hil.dut import Dut
from hil.errors import ConsoleTimeout
from hil.images.bundle import make_foreign_bundle, truncate_bundle
from hil.result import CommandResult

if TYPE_CHECKING:
    from suites.hostapp_update.conftest import UpdatePlan

pytestmark = [pytest.mark.slow, pytest.mark.requires_os("ab-update")]

CANARY = "hil-update-canary"
UPDATE_LOG = "/tmp/hil-hostapp-update.log"
FOREIGN_DEVICE_TYPE = "raspberrypi4-64"


@dataclass(frozen=True)
class OsState:
    """What the DUT reports about its host OS and update state."""

    slot: str
    version: str
    boot_env: str
    pending: str
    rollbacks: frozenset[str]  # roles (altboot, health, health_failed) whose breadcrumb exists


def _out(dut: Dut, command: str) -> str:
    return dut.run(command).check().output.strip()


def os_state(dut: Dut) -> OsState:
    """Read slot, version, boot environment, pending flag and rollback breadcrumbs over SSH."""
    profile, update = dut.profile, dut.profile.update
    assert update is not None and profile.identity.version_command  # requires_os("ab-update")
    names = " ".join(shlex.quote(name) for name in update.rollback_breadcrumbs.values())
    present = set(_out(dut, f"cd {shlex.quote(update.state_dir)} && ls -1 {names} 2>/dev/null; true").split())
    return OsState(
        slot=_out(dut, profile.boot.root_command),
        version=_out(dut, profile.identity.version_command),
        boot_env=_out(dut, update.boot_env_command),
        pending=_out(dut, update.pending_command),
        rollbacks=frozenset(role for role, name in update.rollback_breadcrumbs.items() if name in present),
    )


def put_bundle(dut: Dut, bundle: Path) -> str:
    """Copy a bundle to the DUT's data partition, synced so a power cut cannot take it; its remote path."""
    remote = f"{dut.profile.update.data_dir}/{bundle.name}"
    dut.put(bundle, remote)
    dut.run("sync").check()
    return remote


def install(dut: Dut, remote: str) -> CommandResult:
    """Run the OS's update command on a bundle already on the DUT."""
    update = dut.profile.update
    return dut.run(update.command.render(bundle=remote), timeout=update.bounds.write)


def reboot_into(dut: Dut, after: str, bound: float, *, through_trial: bool = False) -> None:
    """Reboot and log in again within `bound` s; `through_trial`: the first boot reboots by itself first."""
    dut.request_reboot()
    assert dut.console is not None
    if through_trial:
        limit, boot = dut.profile.update.bounds.reboot, dut.profile.boot
        try:
            dut.console.expect(boot.restart_pattern, limit)
        except ConsoleTimeout:
            pytest.fail(f"the DUT did not restart within {limit:.0f} s of `{boot.reboot_command}`; "
                        f"last console lines:\n{dut.console.tail(10)}", pytrace=False)  # fmt: skip
    dut.wait_for_reboot(after, timeout=bound)


def update(dut: Dut, remote: str, after: str = "reboot into the update") -> None:
    """Install a bundle already on the DUT, reboot into it, and wait until the OS has judged it."""
    install(dut, remote).check()
    update = dut.profile.update
    reboot_into(dut, after, update.bounds.reboot)
    limit = update.bounds.commit
    deadline = time.monotonic() + limit
    while _out(dut, update.pending_command) != "0":
        if time.monotonic() > deadline:
            pytest.fail(
                f"the update was neither committed nor rolled back within {limit:.0f} s after {after}"
            )
        time.sleep(1)


def assert_healthy(dut: Dut) -> None:
    """The profile's definition of healthy: each of its services runs."""
    services = dut.profile.services
    for role, service in services.roles.items():
        assert dut.run(services.check.render(name=service)).ok, f"{role} service {service} is not running"


def assert_back_on(dut: Dut, before: OsState, rollback: str) -> None:
    """The DUT runs the OS it ran before the update, and the rollback's breadcrumb says why."""
    after = os_state(dut)
    assert (after.slot, after.version) == (before.slot, before.version)
    assert after.pending == "0", f"an update is still pending after the {rollback} rollback"
    assert rollback in after.rollbacks, f"no {dut.profile.update.rollback_breadcrumbs[rollback]} breadcrumb"
    assert_healthy(dut)


def assert_updated(dut: Dut, before: OsState, plan: UpdatePlan) -> None:
    """The DUT runs the target OS from the other root, committed, with no rollback breadcrumb."""
    after = os_state(dut)
    assert after.slot != before.slot, f"still on root {before.slot} after the update"
    if plan.target_version:
        assert after.version == plan.target_version
    assert after.pending == "0", "the update was not committed"
    assert after.rollbacks == frozenset(), (
        f"rollback breadcrumbs after a good update: {sorted(after.rollbacks)}"
    )
    assert_healthy(dut)


def test_update_lands_in_the_other_root_and_keeps_data_and_config(
    fresh_dut: Dut, update_plan: UpdatePlan
) -> None:
    dut, profile = fresh_dut, fresh_dut.profile
    canary = f"{profile.update.data_dir}/{CANARY}"
    data_sum = _out(
        dut, f"dd if=/dev/urandom of={canary} bs=64k count=16 2>/dev/null && sync && sha256sum {canary}"
    )
    config_sum = _out(dut, f"sha256sum {profile.layout.config_path}")
    before = os_state(dut)
    assert before.rollbacks == frozenset()

    update(dut, put_bundle(dut, update_plan.bundle))

    assert_updated(dut, before, update_plan)
    assert _out(dut, f"sha256sum {canary}") == data_sum
    assert _out(dut, f"sha256sum {profile.layout.config_path}") == config_sum


def test_update_twice_returns_to_the_first_root(fresh_dut: Dut, update_plan: UpdatePlan) -> None:
    dut = fresh_dut
    first = os_state(dut).slot
    remote = put_bundle(dut, update_plan.bundle)
    update(dut, remote, "reboot into the first update")
    second = os_state(dut).slot
    update(dut, remote, "reboot into the second update")
    state = os_state(dut)
    assert second != first and state.slot == first, f"roots went {first} -> {second} -> {state.slot}"
    assert state.rollbacks == frozenset()
    assert_healthy(dut)


def test_update_whose_health_check_fails_rolls_back(
    fresh_dut: Dut, variant_bundle: Callable[[str], Path]
) -> None:
    bundle = variant_bundle("broken-health")
    dut = fresh_dut
    before = os_state(dut)
    install(dut, put_bundle(dut, bundle)).check()
    # The trial boot comes up, fails its health check and reboots into the old root by itself.
    reboot_into(dut, "rollback-health reboot", dut.profile.update.bounds.rollback_health, through_trial=True)
    assert_back_on(dut, before, "health")
    assert "altboot" not in os_state(dut).rollbacks


def test_update_that_never_boots_rolls_back_and_a_good_update_then_lands(
    fresh_dut: Dut, update_plan: UpdatePlan, variant_bundle: Callable[[str], Path]
) -> None:
    bundle = variant_bundle("broken-init")
    dut = fresh_dut
    before = os_state(dut)
    install(dut, put_bundle(dut, bundle)).check()
    # Each try of the new root panics and resets (no orderly restart line) until the bootloader gives up.
    reboot_into(dut, "rollback-altboot reboot", dut.profile.update.bounds.rollback_altboot)
    assert_back_on(dut, before, "altboot")
    # The device is not stuck: the next update lands, and its breadcrumbs describe that update only.
    update(dut, put_bundle(dut, update_plan.bundle), "reboot into a good update after the rollback")
    assert_updated(dut, before, update_plan)


def test_update_whose_kernel_panics_rolls_back(fresh_dut: Dut, variant_bundle: Callable[[str], Path]) -> None:
    # The kernel travels with the root: this update's kernel panics before any of its userspace runs, so
    # only the bootloader, counting the tries, can bring the old root (and its kernel) back.
    bundle = variant_bundle("broken-kernel")
    dut = fresh_dut
    before = os_state(dut)
    install(dut, put_bundle(dut, bundle)).check()
    reboot_into(dut, "rollback-altboot reboot", dut.profile.update.bounds.rollback_altboot)
    assert_back_on(dut, before, "altboot")
    assert "health" not in os_state(dut).rollbacks


def _cut_power_mid_write(dut: Dut, remote: str) -> None:
    """Start the update in the background, cut the power once its write has begun, power on again."""
    update = dut.profile.update
    if not update.writing_pattern:
        pytest.fail(
            f"OS profile {dut.profile.name!r} states no update.writing_pattern to time the power cut by"
        )
    command = update.command.render(bundle=remote)
    dut.run(f"{{ {command}; echo hil-exit:$?; }} >{UPDATE_LOG} 2>&1 </dev/null &").check()
    writing = re.compile(update.writing_pattern)
    deadline = time.monotonic() + update.bounds.write
    while True:
        log = dut.run(f"cat {UPDATE_LOG}").output
        if "hil-exit:" in log:
            pytest.fail(f"the update ended before the power cut could land mid-write:\n{log}")
        if writing.search(log):
            break
        assert time.monotonic() < deadline, f"the update did not start writing within the bound:\n{log}"
        time.sleep(0.2)
    dut.power_cycle()


@pytest.mark.parametrize("pending_before", [False, True], ids=["first-write", "rewrite-of-a-pending-update"])
def test_power_loss_during_the_write_keeps_the_old_os_and_a_retry_succeeds(
    fresh_dut: Dut, update_plan: UpdatePlan, pending_before: bool
) -> None:
    dut = fresh_dut
    before = os_state(dut)
    remote = put_bundle(dut, update_plan.bundle)
    if pending_before:
        # Written but not yet rebooted into: the root about to be rewritten must not stay marked for a try.
        install(dut, remote).check()

    _cut_power_mid_write(dut, remote)

    assert os_state(dut) == before, "the power cut mid-write changed the booted OS or its update state"
    assert_healthy(dut)
    update(dut, remote, "reboot into the retried update")
    assert_updated(dut, before, update_plan)


def _foreign(bundle: Path, out: Path, manifest: dict | None) -> Path:
    if manifest is None:
        pytest.skip("a bundle for another device type is made from hil's bundle format only")
    return make_foreign_bundle(bundle, FOREIGN_DEVICE_TYPE, out)


REJECTIONS = {
    "foreign-device-type": (_foreign, re.escape(FOREIGN_DEVICE_TYPE)),
    "truncated": (
        lambda bundle, out, manifest: truncate_bundle(bundle, out),
        r"(?i)truncated|checksum|corrupt",
    ),
}


@pytest.mark.parametrize("kind", REJECTIONS)
def test_bundle_that_does_not_fit_is_refused_and_changes_nothing(
    fresh_dut: Dut, update_plan: UpdatePlan, tmp_path: Path, kind: str
) -> None:
    make, message = REJECTIONS[kind]
    bundle = make(update_plan.bundle, tmp_path / f"{kind}.bundle.tar", update_plan.manifest)
    dut = fresh_dut
    before = os_state(dut)
    result = install(dut, put_bundle(dut, bundle))
    assert result.exit_code != 0, f"the {kind} bundle was accepted:\n{result.output}"
    assert re.search(message, result.output), f"refusal does not say why ({message}):\n{result.output}"
    assert os_state(dut) == before
