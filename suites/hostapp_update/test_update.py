"""Hostapp-update suite, updates that land: a host OS update goes into the other root and keeps the
user's data and configuration, a second one returns to the first root, a power cut mid-write leaves the
old OS and a retry succeeds, and bundles that do not fit are refused changing nothing. Every test starts
from the freshly flashed base image (see conftest.py for how base and target are chosen); every wait is
bounded by the OS profile."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.dut import Dut
from hil.os.vocabulary import BundleRole, RefusedRole

from .conftest import UpdatePlan
from .steps import assert_healthy, assert_updated, install, os_state, output, put_bundle, update

pytestmark = [pytest.mark.slow, pytest.mark.requires_os("ab-update")]

CANARY = "hil-update-canary"
UPDATE_LOG = "/tmp/hil-hostapp-update.log"


def test_update_lands_in_the_other_root_and_keeps_data_and_config(
    fresh_dut: Dut, update_plan: UpdatePlan
) -> None:
    dut, profile = fresh_dut, fresh_dut.profile
    canary = f"{profile.update.data_dir}/{CANARY}"
    data_sum = output(
        dut, f"dd if=/dev/urandom of={canary} bs=64k count=16 2>/dev/null && sync && sha256sum {canary}"
    )
    config = profile.layout.config_path  # None: the OS reads no config.json, so there is none to keep
    config_sum = output(dut, f"sha256sum {config}") if config else None
    before = os_state(dut)
    assert before.rollbacks == frozenset()

    update(dut, put_bundle(dut, update_plan.bundle))

    assert_updated(dut, before, update_plan)
    kept = dut.run(f"sha256sum {canary}")
    assert kept.ok and kept.output.strip() == data_sum, f"the data partition lost {canary} in the update"
    if config:
        assert output(dut, f"sha256sum {config}") == config_sum, f"{config} changed in the update"


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


@pytest.mark.parametrize(
    "role",
    [
        "other-compatible",
        pytest.param("other-key", marks=pytest.mark.requires_os("bundle-signatures")),
        "truncated",
    ],
)
def test_bundle_that_does_not_fit_is_refused_and_changes_nothing(
    fresh_dut: Dut, bundle: Callable[[BundleRole], Path], role: RefusedRole
) -> None:
    refusal = fresh_dut.profile.update.refusals.get(role)
    if refusal is None:
        pytest.fail(f"OS profile {fresh_dut.profile.name!r} states no update.refusals.{role}", pytrace=False)
    dut = fresh_dut
    before = os_state(dut)
    result = install(dut, put_bundle(dut, bundle(role)))
    assert result.exit_code != 0, f"the {role} bundle was accepted:\n{result.output}"
    assert re.search(refusal, result.output), f"refusal does not say why ({refusal}):\n{result.output}"
    assert os_state(dut) == before
