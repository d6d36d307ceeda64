"""Gating-run benchmark: `hil run` on the reference image, several rounds, and where the time goes.

Each round is a whole `hil run --no-gate` in a process of its own. From its JUnit XML this prints the
median wall time per suite and in total, and splits it: the boards' firmware, their bootloaders, kernel
to login (the `hil.boots` phases the plugin records), snapshot restores (`hil.restores`), the rest of the
tests' time (commands, update writes, reboots' waits and bounds on the DUT), and hil's own overhead
(start-up, collection, provisioning and reports: the wall time outside any test). The load average is
printed beside each round, since a shared machine inflates wall times; compare rounds of one invocation,
not figures from different days.

    .venv/bin/python bench/run.py [--rounds 3] [--boards auto] [--suite boot ...] [-- extra pytest args]
    .venv/bin/python bench/run.py --rauc      # the same on the Debian 12 RAUC image (rig qemu-rauc)

With --rauc the image is built first (or found in the cache), and its build time is printed, with the
time a second call takes (a cache hit).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HIL = Path(sys.executable).with_name("hil")
SPLIT = (
    "firmware", "bootloader", "kernel to login", "snapshot restores", "tests beyond boots", "hil overhead"
)  # fmt: skip


@dataclass
class Round:
    """One gating run: its wall time, each suite's test time, and the split of the wall time."""

    wall: float
    load: str
    boards: int = 1
    suites: dict[str, float] = field(default_factory=dict)
    split: dict[str, float] = field(default_factory=dict)
    boots: int = 0
    restores: int = 0
    tests: int = 0
    failed: list[str] = field(default_factory=list)


def run_round(
    artifacts: Path,
    suites: list[str],
    extra: list[str],
    boards: str = "auto",
    target: list[str] | None = None,
) -> Round:
    """One `hil run` into `artifacts` (on `target`: --rig/--image arguments; default the reference), timed."""
    command = [
        str(HIL),
        "run",
        "--no-gate",
        "--boards",
        boards,
        "--artifacts",
        str(artifacts),
        *(target or []),
    ]
    command += [arg for suite in suites for arg in ("--suite", suite)]
    command += ["--", *extra] if extra else []
    load = _load()
    start = time.monotonic()
    with (artifacts.parent / f"{artifacts.name}.out").open("w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - start
    output = (artifacts.parent / f"{artifacts.name}.out").read_text(errors="replace")
    said = re.search(r"^hil: (\d+) boards? at once", output, re.MULTILINE)
    return read_junit(artifacts / "junit.xml", wall, f"{load} -> {_load()}", int(said[1]) if said else 1)


def rauc_target() -> tuple[str, ...]:
    """Build (or find) the RAUC image, print how long that took, and name its rig and image."""
    from hil.images.builders.rauc import build_rauc  # only this mode needs the builder

    timings = []
    for _ in range(2):
        start = time.monotonic()
        image = build_rauc(log=lambda line: None)
        timings.append(time.monotonic() - start)
    print(f"RAUC image {image.disk}: first call {timings[0]:.1f} s (a build unless cached), "
          f"second {timings[1]:.1f} s (cached)", flush=True)  # fmt: skip
    os.environ.setdefault("HIL_DUT_PASSWORD", "hil-debian")  # the image's console password
    return ("--rig", "qemu-rauc", "--image", str(image.disk))


def _load() -> str:
    return " ".join(f"{avg:.2f}" for avg in os.getloadavg())


def read_junit(junit: Path, wall: float, load: str, boards: int = 1) -> Round:
    """Split a run's wall time from its JUnit XML (test durations and the `hil.boots` property).

    On several boards the split is of board-seconds; hil's overhead is the wall time the boards' test
    time, shared out, does not cover.
    """
    result = Round(wall, load, boards)
    if not junit.exists():
        result.failed.append(f"no JUnit XML at {junit}")
        return result
    phases = dict.fromkeys(SPLIT, 0.0)
    tested = 0.0
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value", "") for p in case.iter("property")}
        seconds = float(case.get("time", 0))
        suite = props.get("hil.suite", "other")
        result.suites[suite] = result.suites.get(suite, 0.0) + seconds
        result.tests += 1
        tested += seconds
        if case.find("failure") is not None or case.find("error") is not None:
            result.failed.append(f"{case.get('classname')}::{case.get('name')}")
        for boot in json.loads(props.get("hil.boots", "[]")):
            result.boots += 1
            phases["firmware"] += boot.get("firmware", 0.0)
            phases["bootloader"] += boot.get("bootloader", 0.0)
            phases["kernel to login"] += sum(boot.get(n, 0.0) for n in ("kernel", "init", "login"))
        for seconds in json.loads(props.get("hil.restores", "[]")):
            result.restores += 1
            phases["snapshot restores"] += seconds
    phases["tests beyond boots"] = tested - sum(phases.values())
    phases["hil overhead"] = wall - tested / boards
    result.split = phases
    return result


def report(rounds: list[Round]) -> str:
    """Medians per suite, in total, and of the split; every round's wall time and load average."""
    lines = [f"round {i}: {r.wall:7.1f} s wall, {r.boards} board(s), {r.tests} tests, {r.boots} boots, "
             f"{r.restores} restores, load {r.load}"
             for i, r in enumerate(rounds, 1)]  # fmt: skip
    median = statistics.median
    lines.append("\nmedian seconds per suite (test durations):")
    for suite in sorted({s for r in rounds for s in r.suites}):
        lines.append(f"  {suite:<20} {median(r.suites.get(suite, 0.0) for r in rounds):7.1f}")
    lines.append(f"  {'total (wall)':<20} {median(r.wall for r in rounds):7.1f}")
    lines.append("\nwhere the time goes (median seconds; board-seconds on several boards):")
    for part in SPLIT:
        lines.append(f"  {part:<20} {median(r.split.get(part, 0.0) for r in rounds):7.1f}")
    for i, r in enumerate(rounds, 1):
        lines += [f"round {i} FAILED: {what}" for what in r.failed]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--suite", action="append", default=[], help="suite to run (repeatable)")
    parser.add_argument("--boards", default="auto", help="hil run --boards: N or auto (the default)")
    parser.add_argument("--artifacts", type=Path, help="keep each round's artifacts here")
    parser.add_argument("--rauc", action="store_true", help="the Debian 12 RAUC image on rig qemu-rauc")
    parser.add_argument("extra", nargs="*", help="after --: extra pytest arguments")
    args = parser.parse_args()
    target = rauc_target() if args.rauc else ()
    base = args.artifacts or Path(tempfile.mkdtemp(prefix="hil-bench-run-"))
    base.mkdir(parents=True, exist_ok=True)
    rounds = []
    for i in range(1, args.rounds + 1):
        rounds.append(run_round(base / f"round-{i}", args.suite, args.extra, args.boards, target))
        print(f"round {i}: {rounds[-1].wall:.1f} s (artifacts {base / f'round-{i}'})", flush=True)
    print(report(rounds))
    return 1 if any(r.failed for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
