"""Flash speed: hil's flasher (verify on) against `dd bs=4M conv=fsync` and `bmaptool copy`.

A 1 GiB image, half zeros (holes) and half random data in alternating 1 MiB runs, written to a file target.
Several rounds of each; prints the medians and the ratios (target: >= 1.8x dd, >= 1x bmaptool).

    .venv/bin/python bench/flash.py [--size-mib 1024] [--rounds 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from hil.drivers.flasher import flash
from hil.drivers.progress import LogProgress
from hil.paths import cache_dir

MIB = 1 << 20


def make_image(path: Path, size_mib: int) -> None:
    """Half zeros, half random data, alternating every MiB; the zeros are holes so bmaptool maps only data."""
    with open(path, "wb") as f:
        f.truncate(size_mib * MIB)
        for mib in range(0, size_mib, 2):
            f.seek(mib * MIB)
            f.write(os.urandom(MIB))


def run(command: list[str]) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timed(action: Callable[[], object], target: Path) -> float:
    target.unlink(missing_ok=True)
    run(["sync"])
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    """Build the image, time each writer over several rounds, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=cache_dir() / "bench-flash")
    args = parser.parse_args()
    work: Path = args.dir
    shutil.rmtree(work, ignore_errors=True)
    (work / "with-bmap").mkdir(parents=True)
    (work / "plain").mkdir()
    image = work / "with-bmap" / "bench.img"
    make_image(image, args.size_mib)
    run(["bmaptool", "create", "-o", str(image.with_suffix(".bmap")), str(image)])
    plain = work / "plain" / "bench.img"
    os.link(image, plain)
    target = work / "target.img"
    quiet = LogProgress("bench")
    writers: dict[str, Callable[[], object]] = {
        "dd bs=4M conv=fsync": lambda: run(
            ["dd", f"if={image}", f"of={target}", "bs=4M", "conv=fsync", "status=none"]
        ),
        "bmaptool copy": lambda: run(["bmaptool", "copy", str(image), str(target)]),
        "hil flash, bmap, verify": lambda: flash(image, target, progress=quiet),
        "hil flash, no bmap, verify": lambda: flash(plain, target, progress=quiet),
    }
    run(["cat", str(image)])  # the source is in the page cache for every writer alike
    times: dict[str, list[float]] = {name: [] for name in writers}
    for _ in range(args.rounds):
        for name, action in writers.items():
            times[name].append(timed(action, target))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"image: {args.size_mib} MiB, half zeros; target: a file on {work}; {args.rounds} rounds")
    for name, median in medians.items():
        spread = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:28s} median {median:6.2f} s  ({spread})")
    for name in ("hil flash, bmap, verify", "hil flash, no bmap, verify"):
        dd_ratio = medians["dd bs=4M conv=fsync"] / medians[name]
        bmap_ratio = medians["bmaptool copy"] / medians[name]
        print(f"  {name}: {dd_ratio:.2f}x faster than dd, {bmap_ratio:.2f}x bmaptool")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
