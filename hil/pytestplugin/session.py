"""The state one pytest session keeps for hil: the run's identity, the options, the rig and the DUT."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hil.lab.pool import rig_for
from hil.pytestplugin.xdist import from_controller

if TYPE_CHECKING:
    from hil.dut import Dut
    from hil.lab.rig import Rig

DEFAULT_RIG = "qemu-x86_64"


class HilRun:
    """Per-session state, kept in the config stash (xdist workers share the controller's run)."""

    def __init__(self, config: pytest.Config) -> None:
        inherited = from_controller(config)
        self.run_id = inherited.get("run_id") or uuid.uuid4().hex[:12]
        self.started = inherited.get("started") or datetime.now(UTC).isoformat(timespec="seconds")
        option = inherited.get("artifacts") or config.getoption("hil_artifacts")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.artifacts = (
            Path(option) if option else Path.cwd() / "artifacts" / f"run-{stamp}-{self.run_id[:4]}"
        )
        self.rig_arg: str = config.getoption("rig") or DEFAULT_RIG
        self.pool_wait: float = config.getoption("pool_wait")
        image = config.getoption("image")
        self.image_arg: Path | None = Path(image) if image else None
        self.device_type: str | None = config.getoption("device_type")
        self.rig: Rig | None = None
        self.dut: Dut | None = None

    def rig_definition(self) -> Rig:
        """The rig --rig names (a pool's first), without leasing it: for what it offers, not to use it."""
        if self.rig is None:
            self.rig = rig_for(self.rig_arg)
        return self.rig


RUN = pytest.StashKey[HilRun]()


def hil_run(config: pytest.Config) -> HilRun:
    """The session's HilRun, made by whichever of hil's configure hooks asks first."""
    if RUN not in config.stash:
        config.stash[RUN] = HilRun(config)
    return config.stash[RUN]
