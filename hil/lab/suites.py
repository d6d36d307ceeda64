"""The suites a run may name: the folders of test modules under the first suites/ directory found."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from hil.errors import HilError
from hil.util.paths import project_dirs

if TYPE_CHECKING:
    from hil.lab.rig import Rig


def suite_paths(names: list[str] | None) -> list[Path]:
    """The suite directories to run: the named ones, or all under the first suites/ directory found."""
    dirs = project_dirs("suites", "HIL_SUITES_DIR")
    if not dirs:
        raise HilError("no suites/ directory found: set HIL_SUITES_DIR, or reinstall hil (it ships them)")
    available = {p.name: p for p in sorted(dirs[0].iterdir()) if p.is_dir() and any(p.glob("test_*.py"))}
    if not names:
        return list(available.values())
    unknown = [n for n in names if n not in available]
    if unknown:
        raise HilError(f"unknown suite {', '.join(unknown)}; known: {', '.join(available)}")
    return [available[n] for n in names]


def session_args(
    targets: list[str], *, rig: str, image: Path, artifacts: Path, pool_wait: float
) -> list[str]:
    """The pytest arguments of a session of hil's plugin: what to run (suite folders or test ids), the rig
    and image, where its logs and JUnit file (`artifacts/junit.xml`) go."""
    return [
        *targets, "--rig", rig, "--pool-wait", str(pool_wait), "--image", str(image),
        "--hil-artifacts", str(artifacts), f"--junitxml={artifacts / 'junit.xml'}",
        "-o", "junit_family=xunit1", "-p", "no:cacheprovider", "-q", "--no-header",
    ]  # fmt: skip


def auto_boards(rig: Rig, leases: int, units: int) -> int:
    """Boards for --boards auto: a QEMU board keeps a CPU core busy while it computes (TCG), so one board
    per core, at most the boards the rig can lease (`leases`: one for NAME#I) and the units of work (test
    files, faults); 1 on a physical rig, and on the twin that stands for one."""
    if rig.kind != "qemu":
        return 1
    cores = len(os.sched_getaffinity(0))
    return max(1, min(cores, leases, units))
