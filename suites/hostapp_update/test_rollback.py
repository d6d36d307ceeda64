"""Hostapp-update suite, updates that roll back: an update whose health check fails, one whose root
never boots and one whose kernel panics each bring the old OS back by themselves (the health check, or
the bootloader counting the tries), leaving the breadcrumb that says why; after a rollback the next good
update still lands. Every test starts from the freshly flashed base image; every wait is bounded by the
OS profile."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hil.dut import Dut
from hil.os.vocabulary import BundleRole

from .conftest import UpdatePlan
from .steps import OsState, assert_back_on, assert_updated, install, os_state, put_bundle, reboot_into, update

pytestmark = [pytest.mark.slow, pytest.mark.requires_os("ab-update")]


def test_update_whose_health_check_fails_rolls_back(
    fresh_dut: Dut, bundle: Callable[[BundleRole], Path]
) -> None:
    dut = fresh_dut
    before = os_state(dut)
    install(dut, put_bundle(dut, bundle("health-fails"))).check()
    # The trial boot comes up, fails its health check and reboots into the old root by itself.
    reboot_into(dut, "rollback-health reboot", dut.profile.update.bounds.rollback_health, through_trial=True)
    assert_back_on(dut, before, "health")
    assert "altboot" not in os_state(dut).rollbacks


def rolled_back_by_the_bootloader(dut: Dut, bundle: Path) -> OsState:
    """Install `bundle`, whose every try fails before its userspace can judge it, and see the bootloader,
    counting the tries, bring the old OS back; the state from before the update."""
    before = os_state(dut)
    install(dut, put_bundle(dut, bundle)).check()
    # Each try panics and resets (no orderly restart line) until the bootloader gives up.
    reboot_into(dut, "rollback-altboot reboot", dut.profile.update.bounds.rollback_altboot)
    assert_back_on(dut, before, "altboot")
    return before


def test_update_that_never_boots_rolls_back_and_a_good_update_then_lands(
    fresh_dut: Dut, update_plan: UpdatePlan, bundle: Callable[[BundleRole], Path]
) -> None:
    dut = fresh_dut
    before = rolled_back_by_the_bootloader(dut, bundle("never-boots"))
    # The device is not stuck: the next update lands, and its breadcrumbs describe that update only.
    update(dut, put_bundle(dut, update_plan.bundle), "reboot into a good update after the rollback")
    assert_updated(dut, before, update_plan)


def test_update_whose_kernel_panics_rolls_back(fresh_dut: Dut, bundle: Callable[[BundleRole], Path]) -> None:
    # The kernel travels with the root: this update's kernel panics before any of its userspace runs, so
    # only the bootloader, counting the tries, can bring the old root (and its kernel) back.
    rolled_back_by_the_bootloader(fresh_dut, bundle("kernel-panics"))
    assert "health" not in os_state(fresh_dut).rollbacks
