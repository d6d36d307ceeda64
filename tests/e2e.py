"""Helpers for hil's end-to-end tests: the reference image, pytest runs in a subprocess, QEMU leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def reference_disk() -> Path:
    """The reference image (built once, then a cache hit)."""
    from hil.images.reference import build_reference

    return build_reference("1.0.0").disk


def qemu_pids(marker: Path) -> list[int]:
    """PIDs of QEMU processes whose command line mentions `marker` (a test's private temp dir)."""
    out = subprocess.run(["pgrep", "-f", f"qemu-system.*{marker}"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def pytest_env(tmp: Path) -> dict[str, str]:
    """Environment for an inner pytest: its own TMPDIR, so its boards' disks and QEMUs are findable."""
    tmpdir = tmp / "tmp"
    tmpdir.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1"}


def run_pytest(tmp: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run pytest in a subprocess from the repo root, as a CI agent would."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env=pytest_env(tmp), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def write_rig(tmp: Path, name: str, boot_timeout: float) -> Path:
    """A QEMU rig like the shipped one with a shorter boot timeout."""
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"kind: qemu\ndevice_type: qemux86-64\nos: reference\ntimeouts:\n  boot: {boot_timeout}\n  ssh: 60\n"
    )
    return path


qemu = pytest.mark.qemu
