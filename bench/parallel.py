"""Parallel boards benchmark: the boot suite on 1, 2 and 4 QEMU boards at once on one agent.

Each board is its own pytest session, as on a CI agent running several jobs, leasing its own instance of
one virtual rig through a pool (`--rig pool:NAME`). Prints the wall time until every session finished
and its ratio to one board. Target (issue 7): 4 boards <= 2.5 x one board's wall time (2 cores, KVM).

    .venv/bin/python bench/parallel.py [--boards 1 2 4] [--image PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from hil.drivers.qemu.accel import pick_accel
from hil.dut.provision import resolve_image
from hil.lab.rig import load_rig

ROOT = Path(__file__).resolve().parent.parent
RIG = "bench-parallel"


def run_boards(count: int, image: Path, work: Path, env: dict[str, str]) -> tuple[float, list[float], str]:
    """Start `count` boot-suite sessions at once; wall seconds, each session's seconds, test outcomes."""
    start = time.monotonic()
    sessions = []
    for i in range(count):
        out = work / f"{count}-boards" / str(i)
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "suites/boot",
                   "--rig", f"pool:{RIG}", "--image", str(image), "--hil-artifacts", str(out),
                   f"--junitxml={out / 'junit.xml'}"]  # fmt: skip
        log = (work / f"{count}-{i}.log").open("w")
        sessions.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log), out, log))
    ended: dict[int, float] = {}
    while len(ended) < count:  # poll all, so each session's own end time is seen
        for i, (proc, _, _) in enumerate(sessions):
            if i not in ended and proc.poll() is not None:
                ended[i] = time.monotonic() - start
        if time.monotonic() - start > 1800:
            raise TimeoutError(f"{count} boards: sessions still running after 1800 s (logs in {work})")
        time.sleep(0.2)
    passed, failed = 0, 0
    for _, out, log in sessions:
        log.close()
        for case in ET.parse(out / "junit.xml").getroot().iter("testcase"):
            bad = any(case.find(tag) is not None for tag in ("failure", "error"))
            failed, passed = failed + bad, passed + (not bad)
    return max(ended.values()), sorted(ended.values()), f"{passed} passed, {failed} failed"


def main() -> None:
    """Run 1, 2 and 4 boards at once, then print wall times and ratios to one board."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--image", type=Path)
    args = parser.parse_args()
    image = resolve_image(load_rig("qemu-x86_64"), args.image)
    work = Path(tempfile.mkdtemp(prefix="hil-bench-parallel-"))
    rigs = work / "rigs"
    rigs.mkdir()
    (rigs / f"{RIG}.yaml").write_text(
        f"kind: qemu\ndevice_type: qemux86-64\npool: {RIG}\ninstances: {max(args.boards)}\n"
    )
    env = {**os.environ, "HIL_RIGS_DIR": str(rigs), "PYTHONUNBUFFERED": "1"}
    accel = pick_accel("auto")
    print(f"accel {accel.name}: {accel.reason}; {os.cpu_count()} CPUs; logs in {work}")
    base = None
    for count in args.boards:
        wall, took, outcome = run_boards(count, image, work, env)
        base = base or wall
        sessions = ", ".join(f"{t:.1f}" for t in took)
        print(f"{count} board(s): wall {wall:6.1f} s  ratio {wall / base:4.2f} x one board  "
              f"(sessions ended at {sessions} s; {outcome})", flush=True)  # fmt: skip
    print("target: 4 boards <= 2.50 x one board (KVM)")


if __name__ == "__main__":
    main()
