"""config.json onto the boot partition of a flashed card (or a raw image), where the OS reads it at boot.
(A virtual board writes it into its overlay with hil.images.edit, at the same ConfigPlace.)"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hil.drivers.flasher import MIB
from hil.drivers.target import TargetCheck, open_checked
from hil.errors import FlashError, ImageError, ToolMissing
from hil.images.partitions import Partition, partitions

log = logging.getLogger("hil.flasher")


@dataclass(frozen=True)
class ConfigPlace:
    """Where config.json goes on a flashed disk, as the OS profile's layout says: a FAT partition (by
    number; None: the first FAT partition) and the file's path inside it."""

    partition: int | None = None
    path: str = "/config.json"

    def find(self, table: list[Partition], where: Path) -> Partition:
        """This place's partition in a disk's partition table; ImageError when it has none such."""
        found = (
            [p for p in table if p.fat]
            if self.partition is None
            else [p for p in table if p.number == self.partition]
        )
        if not found:
            which = "no FAT partition" if self.partition is None else f"no partition {self.partition}"
            raise ImageError(f"{where} has {which} for config.json")
        return found[0]


def write_config_json(
    target: Path, config: dict, place: ConfigPlace, *, target_check: TargetCheck | None = None
) -> None:
    """Write `config.json` at `place` on a raw image or a flashed card (with mtools).

    The target is opened once (and, with `target_check`, checked) and mtools writes through that very
    descriptor, so config.json lands on the device that was checked, never on a node that replaced it.
    """
    target = Path(target)
    if shutil.which("mcopy") is None:
        raise ToolMissing("mcopy (package mtools) is needed to write config.json")
    with open_checked(target, os.O_RDWR, target_check, "writing config.json failed") as fd:
        boot = place.find(partitions(os.pread(fd, MIB, 0)), target)
        with tempfile.NamedTemporaryFile("w", suffix=".json") as staged:
            json.dump(config, staged, indent=2)
            staged.flush()
            done = subprocess.run(
                ["mcopy", "-o", "-i", f"/proc/self/fd/{fd}@@{boot.offset}", staged.name, f"::{place.path}"],
                capture_output=True,
                env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
                pass_fds=(fd,),
                check=False,
            )
        if done.returncode != 0:
            raise FlashError(f"writing config.json to {target} failed: {done.stderr.decode().strip()}")
        os.fsync(fd)
    log.info("wrote config.json (%d keys) to the boot partition of %s", len(config), target)
