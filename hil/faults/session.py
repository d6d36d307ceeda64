"""One pytest session of hil's plugin in a child process, bounded: a fault's copy of the image, or the
healthy control. The child stops its boards on SIGTERM, so a session past its bound is asked to stop
before it is killed, and no QEMU or board directory outlives it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hil.lab.suites import session_args
from hil.util.hostproc import terminate

# How long a session asked to stop (SIGTERM) may take to power its boards off before it is killed.
STOP_GRACE = 120.0


@dataclass(frozen=True)
class Session:
    """What one child session runs, on which rig, with which image."""

    targets: list[str]  # suite folders, or test ids (folder/test_x.py::test_y[param])
    rig: str
    image: Path
    artifacts: Path
    pool_wait: float
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ended:
    """How a session ended: its exit status (None: killed past its bound) and how long it took."""

    status: int | None
    seconds: float


def run_session(session: Session, timeout: float) -> Ended:
    """Run the session, its output in `artifacts/session.log`; past `timeout` it is stopped."""
    session.artifacts.mkdir(parents=True, exist_ok=True)
    args = session_args(session.targets, rig=session.rig, image=session.image, artifacts=session.artifacts,
                        pool_wait=session.pool_wait)  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}  # the session is ours to choose
    start = time.monotonic()
    with (session.artifacts / "session.log").open("wb") as log:
        child = subprocess.Popen([sys.executable, "-m", "pytest", *args, *session.extra],
                                 stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        try:
            status: int | None = child.wait(timeout)
        except subprocess.TimeoutExpired:
            terminate(child, STOP_GRACE)
            status = None
        except BaseException:  # Ctrl-C: the child got it too; let it stop its boards
            terminate(child, STOP_GRACE)
            raise
    return Ended(status, time.monotonic() - start)
