"""The shipped gate policy and the shipped rigs agree: every device type the gate has rules for can be
tested by a rig or pool hil ships, so a release naming it can ever become final."""

from __future__ import annotations

from pathlib import Path

from hil.lab.pool import pools
from hil.lab.rig import available, load_rig
from hil.release.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]


def test_every_gated_device_type_has_a_rig_or_a_pool() -> None:
    gated = set(load_policy(ROOT / "gate.yaml").model.device_types)
    rigs = {load_rig(path).device_type for path in available().values()}
    pooled = {pool.device_type for pool in pools().values()}
    assert gated - rigs - pooled == set()


def test_the_arm64_board_has_rules_and_a_pool_of_its_own_device_type() -> None:
    assert "generic-aarch64" in load_policy(ROOT / "gate.yaml").model.device_types
    pool = pools()["generic-aarch64"]
    assert [rig.name for rig in pool.rigs] == ["qemu-arm64"]
    assert pool.rigs[0].spec.qemu.arch == "aarch64"
