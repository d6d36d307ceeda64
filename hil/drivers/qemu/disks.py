"""A virtual board's disks: every flash gets its own set (disk overlay, firmware variables),
and a set that holds a snapshot of its booted machine is kept so the board can start from it again.

Firmware variables are a qcow2 file, not raw: QEMU saves a snapshot only when every writable drive can
hold one, and the variables pflash is writable.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hil.errors import QemuError
from hil.util.hostproc import tool

VARS_FILE = "efivars.qcow2"


@dataclass(frozen=True)
class DiskSet:
    """What one flash put on the board: `disk` (None: no disk) in `fmt`."""

    root: Path
    disk: Path | None
    fmt: str

    @property
    def vars(self) -> Path:
        """The firmware's variable store, fresh for each flash."""
        return self.root / VARS_FILE


class DiskSets:
    """The board's disk sets: the attached one, and up to `keep` that hold snapshots (least recent go)."""

    def __init__(self, workdir: Path, vars_template: Path, keep: int = 3) -> None:
        self.workdir = workdir
        self.vars_template = vars_template
        self.keep = keep
        self.current: DiskSet | None = None
        self._snapshots: dict[str, DiskSet] = {}  # key -> set, oldest first
        self._made = 0

    def new_root(self) -> Path:
        """A fresh directory for the next set, with the firmware's variables as they ship."""
        self._made += 1
        root = self.workdir / f"disks-{self._made}"
        root.mkdir(parents=True)
        out = subprocess.run(
            [tool("qemu-img", "qemu-utils"), "convert", "-q", "-f", "raw", "-O", "qcow2",
             str(self.vars_template), str(root / VARS_FILE)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise QemuError(f"qemu-img could not copy the firmware variables: {out.stderr.strip()}")
        return root

    def attach(self, disk_set: DiskSet) -> None:
        """Boot from `disk_set` from now on; the set it replaces goes unless it holds a snapshot."""
        previous, self.current = self.current, disk_set
        if previous is not None and previous != disk_set:
            self._drop(previous)

    def remember(self, key: str) -> None:
        """The attached set now holds the snapshot `key`."""
        if self.current is None:
            raise QemuError("no disk to hold a snapshot")
        self._snapshots.pop(key, None)
        self._snapshots[key] = self.current
        while len(self._snapshots) > self.keep:
            oldest = next(iter(self._snapshots))
            self._drop(self._snapshots.pop(oldest))

    def recall(self, key: str) -> DiskSet | None:
        """The set holding snapshot `key`, or None; it becomes the most recent."""
        disk_set = self._snapshots.pop(key, None)
        if disk_set is not None:
            self._snapshots[key] = disk_set
        return disk_set

    def _drop(self, disk_set: DiskSet) -> None:
        if disk_set != self.current and disk_set not in self._snapshots.values():
            shutil.rmtree(disk_set.root, ignore_errors=True)
