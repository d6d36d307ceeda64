"""The steps and checks the hostapp-update suite's tests share: read the OS's update state, put and
install a bundle, reboot into it within the OS profile's bounds, and judge where the DUT ended up."""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hil.console.result import CommandResult
from hil.dut import Dut

if TYPE_CHECKING:
    from .conftest import UpdatePlan


@dataclass(frozen=True)
class OsState:
    """What the DUT reports about its host OS and update state."""

    slot: str
    version: str
    boot_env: str
    pending: str
    rollbacks: frozenset[str]  # the kinds (altboot, health, health_failed) of rollback the OS shows


def output(dut: Dut, command: str) -> str:
    """A command's output over SSH, stripped; a failing command fails the test."""
    return dut.run(command).check().output.strip()


def rollbacks(dut: Dut) -> frozenset[str]:
    """The kinds of rollback the OS shows: breadcrumbs that exist, and checks of the updater's status."""
    update = dut.profile.update
    found = set()
    if update.rollback_breadcrumbs:
        names = " ".join(shlex.quote(name) for name in update.rollback_breadcrumbs.values())
        listing = output(
            dut, f"cd {shlex.quote(update.state_dir)} && ls -1 {names} 2>/dev/null; true"
        ).split()
        found |= {kind for kind, name in update.rollback_breadcrumbs.items() if name in listing}
    found |= {kind for kind, check in update.rollback_checks.items() if dut.run(check).ok}
    return frozenset(found)


def os_state(dut: Dut) -> OsState:
    """Read slot, version, boot environment, pending flag and rollbacks over SSH."""
    profile, update = dut.profile, dut.profile.update
    assert update is not None and profile.identity.version_command  # requires_os("ab-update")
    return OsState(
        slot=output(dut, profile.boot.root_command),
        version=output(dut, profile.identity.version_command),
        boot_env=output(dut, update.boot_env_command),
        pending=output(dut, update.pending_command),
        rollbacks=rollbacks(dut),
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
    """Reboot and log in again within `bound` s; `through_trial`: the first boot reboots by itself first.

    The DUT says it restarted on its console, through the board's count of boots, or by a new boot id, so
    an OS whose console prints nothing (balenaOS's `console=null quiet`) is waited for as well; a trial
    boot seen only by its boot id must answer SSH while it runs.
    """
    dut.request_reboot()
    dut.wait_for_reboot(after, timeout=bound, restarts=2 if through_trial else 1)


def update(dut: Dut, remote: str, after: str = "reboot into the update") -> None:
    """Install a bundle already on the DUT, reboot into it, and wait until the OS has judged it."""
    install(dut, remote).check()
    update = dut.profile.update
    reboot_into(dut, after, update.bounds.reboot)
    limit = update.bounds.commit
    deadline = time.monotonic() + limit
    while output(dut, update.pending_command) != "0":
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
    assert rollback in after.rollbacks, f"the OS shows no {rollback} rollback"
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
