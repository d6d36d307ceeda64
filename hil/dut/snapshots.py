"""The snapshot cache: booted DUTs a board keeps whole, so that a fresh DUT starts in about a second.

Where a board keeps snapshots (`BootSnapshots`), the first fresh DUT of an image and a configuration is
saved once booted, and later ones restore it: memory, disk and SSH host key as that boot left them. A
snapshot is named by what makes a DUT that DUT: the image's content hash, the OS profile and the whole
config.json. hil remembers what it knew of each saved DUT (the image, its config.json, how its device type
was known, the host key to pin again) for at most three, as the board keeps their disk sets, the least
recently used going first. A board that cannot save says so once; every later fresh DUT boots.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from hil.drivers.capabilities import BootSnapshots
from hil.errors import QemuError
from hil.images.hash import image_sha256

log = logging.getLogger("hil.dut")

KEEP = 3  # snapshots kept, as the QEMU board keeps their disk sets (hil.drivers.qemu.disks)


@dataclass(frozen=True)
class SavedBoot:
    """What hil knew of a DUT when its board saved a snapshot of it, to be that DUT again on restore."""

    image: Path
    config: dict[str, Any]
    device_type_source: str
    host_key: paramiko.PKey | None  # the key the boot's SSH server showed: pinned again on restore


def snapshot_key(image_sha256: str, profile: str, config: Mapping[str, Any]) -> str:
    """The name of a booted DUT: its image's content hash, its OS profile and its whole config.json."""
    what = [image_sha256, profile, config]
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


class SnapshotCache:
    """The booted DUTs a board keeps snapshots of, as hil knew each one when it was saved."""

    def __init__(self, name: str, board: BootSnapshots | None, keep: int = KEEP) -> None:
        self.name = name
        self.board = board
        self.keep = keep
        # Why no snapshot is saved (the board has none, or could not save one), or None.
        self.off: str | None = None if board is not None else "the board keeps no snapshots"
        self._saved: dict[str, SavedBoot] = {}  # least recently used first

    @property
    def saving(self) -> bool:
        """Whether a fresh DUT that had to boot is saved."""
        return self.board is not None and self.off is None

    def key(self, image: Path, profile: str, config: Mapping[str, Any]) -> str:
        """The name a DUT flashed with `image` and `config` (the whole config.json) is saved under."""
        return snapshot_key(image_sha256(image), profile, config)

    def recall(self, key: str) -> SavedBoot | None:
        """The DUT saved as `key` while the board still keeps it (it becomes the most recently used)."""
        saved = self._saved.pop(key, None)
        if saved is None or self.board is None or not self.board.has_snapshot(key):
            return None
        self._saved[key] = saved
        return saved

    def restore(self, key: str, deadline: float) -> None:
        """Have the board run the machine saved as `key` from where it was saved."""
        if self.board is None:
            raise QemuError(f"{self.name} keeps no snapshots to restore {key[:12]} from")
        self.board.restore_snapshot(key, deadline)

    def save(self, key: str, boot: SavedBoot, died: Callable[[], str | None]) -> None:
        """Snapshot the running DUT as `key`. A board that cannot (QEMU refused) is never asked again;
        one that died (`died()` says why) raises."""
        if self.board is None or self.off is not None:
            return
        try:
            self.board.save_snapshot(key)
        except QemuError as exc:
            if died():
                raise
            self.off = str(exc)
            log.warning("%s: no snapshots on this board, every fresh DUT boots: %s", self.name, exc)
            return
        self._saved.pop(key, None)
        self._saved[key] = boot
        while len(self._saved) > self.keep:
            oldest = next(iter(self._saved))
            del self._saved[oldest]
            log.info("%s: forgot snapshot %s (at most %d are kept)", self.name, oldest[:12], self.keep)

    @property
    def keys(self) -> list[str]:
        """The saved DUTs' names, least recently used first."""
        return list(self._saved)
