"""Board directories never outlive their owner: a later run sweeps what a killed one left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hil.util.workdir import make_workdir, sweep


def test_a_dead_owners_directory_is_swept(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    left = tmp_path / "hil-board-qemu-x86_64-abc"
    left.mkdir()
    (left / "owner.pid").write_text(child.stdout.strip())
    (left / "disk.qcow2").write_bytes(b"overlay")
    assert sweep(tmp_path) == [left]
    assert not left.exists()


def test_a_live_owners_directory_is_kept(tmp_path: Path) -> None:
    mine = make_workdir("qemu-x86_64", tmp_path)
    assert (mine / "owner.pid").read_text() == str(os.getpid())
    assert sweep(tmp_path) == []
    assert mine.exists()
