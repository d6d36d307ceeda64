"""A virtual board's disk sets: one per flash, kept while they hold a snapshot, the oldest dropped."""

from __future__ import annotations

from pathlib import Path

from hil.drivers.qemu.disks import DiskSet, DiskSets


def _flash(sets: DiskSets) -> DiskSet:
    root = sets.new_root()
    disk_set = DiskSet(root, root / "disk.qcow2", "qcow2")
    sets.attach(disk_set)
    return disk_set


def test_each_flash_gets_fresh_firmware_variables_and_replaces_the_last_set(tmp_path: Path) -> None:
    template = tmp_path / "OVMF_VARS.fd"
    template.write_bytes(b"\0" * 65536)
    sets = DiskSets(tmp_path / "board", template)
    first = _flash(sets)
    assert first.vars.read_bytes().startswith(b"QFI\xfb"), "firmware variables are not a qcow2 file"
    second = _flash(sets)
    assert not first.root.exists() and second.root.exists()


def test_a_set_holding_a_snapshot_outlives_later_flashes_until_it_is_the_oldest_of_too_many(
    tmp_path: Path,
) -> None:
    template = tmp_path / "OVMF_VARS.fd"
    template.write_bytes(b"\0" * 65536)
    sets = DiskSets(tmp_path / "board", template, keep=2)
    kept = []
    for key in ("a", "b", "c"):
        kept.append(_flash(sets))
        sets.remember(key)
    scratch = _flash(sets)
    assert sets.recall("a") is None and not kept[0].root.exists(), "three snapshots kept with room for two"
    assert sets.recall("b") == kept[1] and sets.recall("c") == kept[2]
    assert all(s.root.exists() for s in kept[1:])
    sets.attach(kept[1])  # a restore attaches a kept set; the set it replaces goes, unless it is kept too
    assert not scratch.root.exists() and kept[2].root.exists()
