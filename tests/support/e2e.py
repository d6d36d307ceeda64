"""Helpers for hil's end-to-end tests: the reference image, pytest runs in a subprocess, QEMU leftovers."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def reference_disk() -> Path:
    """The reference image (built once, then a cache hit)."""
    from hil.images.builders.reference import build_reference

    return build_reference("1.0.0").disk


_ROOTS: set[Path] = set()


def boards_root(tmp: Path) -> Path:
    """A short, private board-directory root for one test (socket paths must stay under 108 bytes)."""
    root = Path(tempfile.gettempdir()) / f"hil-e2e-{hashlib.sha256(str(tmp).encode()).hexdigest()[:8]}"
    root.mkdir(exist_ok=True)
    _ROOTS.add(root)
    return root


def remove_boards_roots() -> None:
    """Remove the roots this process made that are empty; one still holding a board directory is a
    leftover its test failed on, kept to be looked at."""
    for root in _ROOTS:
        with contextlib.suppress(OSError):
            root.rmdir()


def qemu_pids(tmp: Path) -> list[int]:
    """PIDs of QEMU processes started by one test's inner runs (found by their board directory)."""
    out = subprocess.run(["pgrep", "-f", f"qemu-system.*{boards_root(tmp)}"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def leftover_disks(tmp: Path) -> list[Path]:
    """Board directories (overlays, firmware vars) an inner run left behind."""
    return list(boards_root(tmp).glob("hil-board-*"))


def pytest_env(tmp: Path) -> dict[str, str]:
    """Environment for an inner pytest: boards under the test's private root, so leftovers are findable."""
    return {**os.environ, "HIL_WORKDIR_ROOT": str(boards_root(tmp)), "PYTHONUNBUFFERED": "1"}


def run_pytest(tmp: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run pytest in a subprocess from the repo root, as a CI agent would."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env=pytest_env(tmp), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def run_suites(
    tmp: Path, rig: str, image: Path, *suites: str, timeout: float = 900
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run `suites` on `rig` with `image` as a CI agent would (artifacts under tmp/art): the finished
    process and its JUnit file."""
    junit = tmp / "junit.xml"
    out = run_pytest(
        tmp, *suites, "--rig", rig, "--image", str(image), "--hil-artifacts", str(tmp / "art"),
        f"--junitxml={junit}", timeout=timeout,
    )  # fmt: skip
    return out, junit


def write_rig(tmp: Path, name: str, boot_timeout: float) -> Path:
    """A QEMU rig like the shipped one with a shorter boot timeout."""
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"kind: qemu\ndevice_type: qemux86-64\nos: reference\ntimeouts:\n  boot: {boot_timeout}\n  ssh: 60\n"
    )
    return path


# Every test of the hostapp-update suite, as JUnit names them: the same on every updater it runs on.
HOSTAPP_UPDATE_TESTS = frozenset({
    "test_update_lands_in_the_other_root_and_keeps_data_and_config",
    "test_update_twice_returns_to_the_first_root",
    "test_update_whose_health_check_fails_rolls_back",
    "test_update_that_never_boots_rolls_back_and_a_good_update_then_lands",
    "test_update_whose_kernel_panics_rolls_back",
    "test_power_loss_during_the_write_keeps_the_old_os_and_a_retry_succeeds[first-write]",
    "test_power_loss_during_the_write_keeps_the_old_os_and_a_retry_succeeds[rewrite-of-a-pending-update]",
    "test_bundle_that_does_not_fit_is_refused_and_changes_nothing[other-compatible]",
    "test_bundle_that_does_not_fit_is_refused_and_changes_nothing[other-key]",
    "test_bundle_that_does_not_fit_is_refused_and_changes_nothing[truncated]",
})  # fmt: skip

qemu = pytest.mark.qemu
