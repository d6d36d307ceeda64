"""config.json onto the boot partition of a flashed card (or a raw image), where the OS reads it at boot."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from hil.drivers.flasher import MIB
from hil.drivers.target import TargetCheck, open_checked
from hil.errors import FlashError, ToolMissing
from hil.images.read import boot_partition

log = logging.getLogger("hil.flasher")


def write_config_json(target: Path, config: dict, *, target_check: TargetCheck | None = None) -> None:
    """Write `config.json` into the FAT boot partition of a raw image or a flashed card (with mtools).

    The target is opened once (and, with `target_check`, checked) and mtools writes through that very
    descriptor, so config.json lands on the device that was checked, never on a node that replaced it.
    """
    target = Path(target)
    if shutil.which("mcopy") is None:
        raise ToolMissing("mcopy (package mtools) is needed to write config.json")
    with open_checked(target, os.O_RDWR, target_check, "writing config.json failed") as fd:
        boot = boot_partition(os.pread(fd, MIB, 0), target)
        with tempfile.NamedTemporaryFile("w", suffix=".json") as staged:
            json.dump(config, staged, indent=2)
            staged.flush()
            done = subprocess.run(
                ["mcopy", "-o", "-i", f"/proc/self/fd/{fd}@@{boot.offset}", staged.name, "::/config.json"],
                capture_output=True,
                env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
                pass_fds=(fd,),
                check=False,
            )
        if done.returncode != 0:
            raise FlashError(f"writing config.json to {target} failed: {done.stderr.decode().strip()}")
        os.fsync(fd)
    log.info("wrote config.json (%d keys) to the boot partition of %s", len(config), target)
