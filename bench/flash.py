"""Flash speed: hil's flasher against `dd bs=4M conv=fsync` and `bmaptool copy`.

A 1 GiB image, half zeros (holes) and half random data in alternating 1 MiB runs. Several rounds of each;
prints the medians and the ratios (target: >= 1.8x dd, >= 1x bmaptool).

The target is a file on the work directory's disk, which measures the page cache rather than a card; with
`--card` it is a file paced at an SD card's sequential speeds (bench/card.py), and the figures are set
beside the card's physical limit: the bytes each writer must move at the card's write and read speeds.
The default card is a class-10 Lexar High-Performance 633x microSDHC UHS-I, measured with H2testw through
a USB 3.0 reader at 19.6 MB/s write and 71.1 MB/s read (Amateur Photographer, "Best micro SD cards").

    .venv/bin/python bench/flash.py [--size-mib 1024] [--rounds 5] [--dir DIR] [--card [--write-mb-s 19.6]]
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

from card import PacedCard

from hil.drivers.flasher import flash
from hil.drivers.progress import LogProgress
from hil.util.paths import cache_dir

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


def timed(action: Callable[[], object], target: Path, card: bool) -> float:
    if not card:  # a card keeps its size and its old bytes, as a real one does
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
    parser.add_argument("--card", action="store_true", help="write to a file paced like an SD card")
    parser.add_argument("--write-mb-s", type=float, default=19.6, help="the card's write speed (--card)")
    parser.add_argument("--read-mb-s", type=float, default=71.1, help="the card's read speed (--card)")
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
    run(["cat", str(image)])  # the source is in the page cache for every writer alike
    if not args.card:
        medians = measure(image, plain, work / "target.img", args.rounds, card=False)
        print(f"image: {args.size_mib} MiB, half zeros; target: a file on {work}; {args.rounds} rounds")
        for name in ("hil flash, bmap, verify", "hil flash, no bmap, verify"):
            dd_ratio = medians["dd bs=4M conv=fsync"] / medians[name]
            bmap_ratio = medians["bmaptool copy"] / medians[name]
            print(f"  {name}: {dd_ratio:.2f}x faster than dd, {bmap_ratio:.2f}x bmaptool")
    else:
        size = args.size_mib * MIB
        with PacedCard(
            work / "card", size=size, write_mb_s=args.write_mb_s, read_mb_s=args.read_mb_s
        ) as card:
            print(f"image: {args.size_mib} MiB, half zeros; target: a card paced at {args.write_mb_s} MB/s "
                  f"write, {args.read_mb_s} MB/s read; {args.rounds} rounds")  # fmt: skip
            medians = measure(image, plain, card.path, args.rounds, card=True)
        write, read = size / (args.write_mb_s * 1e6), size / (args.read_mb_s * 1e6)
        limits = {  # seconds the card itself needs: half the image is data
            "dd bs=4M conv=fsync": write,
            "bmaptool copy": write / 2,  # it checks the image's checksums as it reads them, not the card
            "hil flash, bmap, verify": write / 2 + read / 2,
            "hil flash, bmap, no verify": write / 2,
            # hil empties a file target first (here: a discard), then skips the image's zero blocks
            "hil flash, no bmap, verify": write / 2 + read / 2,
        }
        print("  against the card's limit (seconds it needs to move the bytes at its speeds):")
        for name, limit in limits.items():
            print(f"  {name:28s} {medians[name]:6.2f} s  limit {limit:6.2f} s  {medians[name] / limit:5.2f}x")
        no_verify = medians["hil flash, bmap, no verify"] / medians["bmaptool copy"]
        no_bmap = medians["hil flash, no bmap, verify"] / (medians["dd bs=4M conv=fsync"] + read)
        print(f"  goals: bmap+verify <= 1.10x its limit; no verify <= 1.00x bmaptool ({no_verify:.2f}x); "
              f"no bmap <= 1.10x (dd + read-back) ({no_bmap:.2f}x)")  # fmt: skip
    shutil.rmtree(work)


def measure(image: Path, plain: Path, target: Path, rounds: int, *, card: bool) -> dict[str, float]:
    """Time each writer `rounds` times against `target`; print and return the medians."""
    quiet = LogProgress("bench")
    writers: dict[str, Callable[[], object]] = {
        "dd bs=4M conv=fsync": lambda: run(
            ["dd", f"if={image}", f"of={target}", "bs=4M", "conv=fsync,notrunc", "status=none"]
        ),
        "bmaptool copy": lambda: run(["bmaptool", "copy", str(image), str(target)]),
        "hil flash, bmap, verify": lambda: flash(image, target, progress=quiet),
        "hil flash, bmap, no verify": lambda: flash(image, target, progress=quiet, verify=False),
        "hil flash, no bmap, verify": lambda: flash(plain, target, progress=quiet),
    }
    times: dict[str, list[float]] = {name: [] for name in writers}
    for _ in range(rounds):
        for name, action in writers.items():
            times[name].append(timed(action, target, card))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        spread = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:28s} median {median:6.2f} s  ({spread})")
    return medians


if __name__ == "__main__":
    main()
