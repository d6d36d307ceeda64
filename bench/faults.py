"""Fault benchmark: the whole shipped fault catalogue on the reference, the plain Debian and the RAUC
images, through `hil faults run`, with the wall time per fault against the healthy control's.

Each image gets one `hil faults run` in a process of its own (every fault of its OS profile, the suites
that must catch each run whole unless --only-named). Printed per image: the control's seconds, then per
fault its outcome, seconds and the ratio to the control (a fault that stalls a boot costs its bound),
then the matrix's verdict and the wall time of the whole run. The load average is printed beside each,
since a shared machine inflates wall times.

    .venv/bin/python bench/faults.py [--images reference,debian,rauc] [--only-named] [--boards N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HIL = Path(sys.executable).with_name("hil")
DEBIAN_PASSWORD = "hil-debian"  # the console password hil's Debian builders set


def targets(names: list[str]) -> dict[str, list[str]]:
    """`hil faults run` arguments per image, each image built first (or found in the cache)."""
    from hil.images.builders.debian import build_debian  # building is this benchmark's set-up
    from hil.images.builders.rauc import build_rauc
    from hil.images.builders.reference import build_reference

    made: dict[str, list[str]] = {}
    for name in names:
        if name == "reference":
            made[name] = ["--rig", "qemu-x86_64", "--image", str(build_reference("1.0.0").disk)]
        elif name == "debian":
            disk = build_debian(log=lambda line: None).disk
            made[name] = ["--rig", "qemu-x86_64-generic", "--image", str(disk), "--device-type", "qemux86-64"]
        elif name == "rauc":
            made[name] = ["--rig", "qemu-rauc", "--image", str(build_rauc(log=lambda line: None).disk)]
        else:
            raise SystemExit(f"unknown image {name!r}: reference, debian or rauc")
    return made


def control_seconds(artifacts: Path) -> float | None:
    """The control session's test time, from its JUnit file (None: a recorded run stood in)."""
    junit = artifacts / "control" / "junit.xml"
    if not junit.exists():
        return None
    return sum(float(c.get("time", 0)) for c in ET.parse(junit).getroot().iter("testcase"))


def one(name: str, args: list[str], work: Path, extra: list[str]) -> list[str]:
    """Run one image's catalogue; the report lines."""
    artifacts = work / name
    load = " ".join(f"{a:.2f}" for a in os.getloadavg())
    start = time.monotonic()
    env = {**os.environ, "HIL_DUT_PASSWORD": os.environ.get("HIL_DUT_PASSWORD", DEBIAN_PASSWORD)}
    command = [str(HIL), "faults", "run", *args, "--artifacts", str(artifacts), "--fresh-control",
               "--store", str(work / "store.sqlite"), *extra]  # fmt: skip
    with (work / f"{name}.out").open("w") as out:
        status = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode
    wall = time.monotonic() - start
    lines = [f"\n{name}: exit {status}, {wall:.0f} s wall, load {load} -> "
             + " ".join(f"{a:.2f}" for a in os.getloadavg())]  # fmt: skip
    report = artifacts / "faults.json"
    if not report.exists():
        return [*lines, f"  no matrix (see {work / f'{name}.out'})"]
    control = control_seconds(artifacts)
    lines.append(f"  control: {control:.0f} s of tests" if control else "  control: a recorded run")
    for cell in json.loads(report.read_text())["cells"]:
        ratio = f"{cell['seconds'] / control:5.1f}x control" if control and cell["seconds"] else ""
        lines.append(f"  {cell['fault']:24} {cell['outcome']:14} {cell['seconds']:6.0f} s {ratio}")
    matrix = json.loads(report.read_text())
    caught = sum(c["outcome"] == "caught" for c in matrix["cells"])
    applicable = sum(c["outcome"] != "not applicable" for c in matrix["cells"])
    lines.append(f"  {caught} of {applicable} applicable faults caught")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", default="reference,debian,rauc", help="comma-separated (default: all three)"
    )
    parser.add_argument("--only-named", action="store_true", help="only the tests that must catch each fault")
    parser.add_argument("--boards", help="faults at once (default: hil faults run's)")
    args = parser.parse_args()
    extra = (["--only-named"] if args.only_named else []) + (["--boards", args.boards] if args.boards else [])
    work = Path(tempfile.mkdtemp(prefix="hil-bench-faults-"))
    print(f"artifacts in {work}", flush=True)
    failed = False
    for name, target in targets(args.images.split(",")).items():
        lines = one(name, target, work, extra)
        print("\n".join(lines), flush=True)
        failed |= "exit 0," not in lines[0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
