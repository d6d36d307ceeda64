"""A virtual board's disks: every flash gets its own set (disk overlay, firmware variables),
and a set that holds a snapshot of its booted machine is kept so the board can start from it again.
While a flasher image installs, its set also holds the installer medium, which the board boots from
until it is ejected; the set's disk is then the board's internal disk, with what the installer wrote.

Firmware variables are a qcow2 file, not raw: QEMU saves a snapshot only when every writable drive can
hold one, and the variables pflash is writable.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hil.errors import QemuError
from hil.util.hostproc import tool

VARS_FILE = "efivars.qcow2"


@dataclass(frozen=True)
class DiskSet:
    """What one flash put on the board: `disk` (None: no disk) in `fmt`; whether that disk is the board's
    `internal` one; and the `installer` medium (qcow2) that the firmware boots first while it is there."""

    root: Path
    disk: Path | None
    fmt: str
    internal: bool = False
    installer: Path | None = None

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

    def eject(self) -> None:
        """Take the installer medium out of the attached set (its file goes); the set's disk stays."""
        current = self.current
        if current is None or current.installer is None:
            return
        self.current = dataclasses.replace(current, installer=None)
        current.installer.unlink(missing_ok=True)

    def discard(self) -> None:
        """Detach the attached set and delete it (unless it holds a snapshot): the board has no disk."""
        current, self.current = self.current, None
        if current is not None:
            self._drop(current)

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
