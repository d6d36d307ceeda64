"""`hil run`: the main job. Image, rig, the gating suites under pytest, a table of results, the gate."""

from __future__ import annotations

# Start-up speed: each command imports what it runs inside its function, so `hil --help` loads none of it.
import argparse
import logging
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

log = logging.getLogger("hil.run")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `hil run`."""
    run = subparsers.add_parser(
        "run",
        help="flash and boot a rig, run the gating suites, gate the draft release",
        description="The main job: put the image on the rig (by default on a virtual rig: the reference "
        "image, built if needed), boot it, run the suites under pytest (JUnit XML and Allure results in the "
        "artifacts directory), print a table of results, then gate a draft release in the release store.",
    )
    run.add_argument("--rig", default="qemu-x86_64",
                     help="rig name or YAML, NAME#INSTANCE, pool:NAME (default: qemu-x86_64)")  # fmt: skip
    run.add_argument("-n", "--boards", type=_boards, default="auto", metavar="N|auto",
                     help="boards at once, each a rig instance under its own pytest-xdist worker, the "
                          "suites' test files spread over them (default auto: on a QEMU rig one board per "
                          "CPU core, at most its instances and the test files; else 1)")  # fmt: skip
    run.add_argument("--pool-wait", type=float, default=600.0, metavar="SECONDS",
                     help="how long to wait for a free rig (default: 600)")  # fmt: skip
    run.add_argument("--force", action="store_true",
                     help="use a rig named directly even though its last `hil rig check` failed")  # fmt: skip
    run.add_argument(
        "--image", type=Path, help="image to test (default on virtual rigs: the reference image)"
    )
    run.add_argument("--device-type", metavar="SLUG",
                     help="device type of an --image that names none (recorded as asserted)")  # fmt: skip
    run.add_argument("--suite", action="append", dest="suites", metavar="NAME",
                     help="suite to run (repeatable; default: every suite under suites/)")  # fmt: skip
    run.add_argument("--artifacts", type=Path, help="output directory (default: ./artifacts/run-<time>)")
    run.add_argument("--no-gate", action="store_true", help="run the suites but do not gate a release")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: extra pytest arguments")
    run.set_defaults(func=_run)


def _boards(value: str) -> int | None:
    """--boards: a positive number, or auto (None)."""
    if value == "auto":
        return None
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: a number of boards (1 or more) or auto")
    return int(value)


def _run(args: argparse.Namespace) -> int:
    import pytest

    from hil.dut.boards import preflight
    from hil.dut.provision import resolve_image
    from hil.lab.pool import POOL_PREFIX, lease_count, require_healthy, rig_for
    from hil.lab.suites import auto_boards, session_args, suite_paths

    rig = rig_for(args.rig)  # a pool's first rig: its device type chooses the image for all of them
    if not args.rig.startswith(POOL_PREFIX) and not args.force:
        require_healthy(rig)  # now, in one line, rather than as every test's failure
    preflight(rig)
    suites = suite_paths(args.suites)
    image = resolve_image(rig, args.image)
    artifacts = args.artifacts or Path.cwd() / "artifacts" / datetime.now().strftime("run-%Y%m%d-%H%M%S")
    artifacts.mkdir(parents=True, exist_ok=True)
    junit = artifacts / "junit.xml"
    print(f"hil: rig {rig.name} ({rig.kind}, {rig.device_type}); image {image}", file=sys.stderr)
    print(f"hil: suites {', '.join(p.name for p in suites)}; artifacts {artifacts}", file=sys.stderr)
    extra = [a for a in args.pytest_args if a != "--"]
    test_files = sum(len(list(p.glob("test_*.py"))) for p in suites)
    boards = args.boards or auto_boards(rig, lease_count(args.rig), test_files)
    if boards > 1:  # a module's tests share its fixtures: they stay on one board
        extra += ["-n", str(boards), "--dist", "loadfile"]
    print(f"hil: {boards} board{'s' if boards > 1 else ''} at once", file=sys.stderr)
    if args.force:
        extra.append("--force-rig")
    if args.device_type:
        extra += ["--device-type", args.device_type]
    status = pytest.main([
        *session_args(list(map(str, suites)), rig=args.rig, image=image, artifacts=artifacts,
                      pool_wait=args.pool_wait),
        "--hil-record-run",  # for `hil runs`, `hil serve`
        f"--alluredir={artifacts / 'allure-results'}",
        "--clean-alluredir",  # a reused artifacts dir must not mix another run's Allure results into this one
        *extra,
    ])  # fmt: skip
    print_table(junit)
    print(f"\nreports: {junit}\n         {artifacts / 'allure-results'} (allure serve ...)\n"
          f"logs:    {artifacts / rig.name}*", file=sys.stderr)  # fmt: skip
    suites_ok = status == pytest.ExitCode.OK
    if args.no_gate:
        return 0 if suites_ok else 1
    from hil.release.api import gate_run
    from hil.release.catalog import collect

    # Every installed suite, whatever --suite or -k chose: the gate knows what a complete run holds.
    catalog = collect(suite_paths(None))
    gate = gate_run(results=[artifacts], device_type=rig.device_type, image=image, catalog=catalog,
                    report_dir=artifacts / "gate", session_status=int(status))  # fmt: skip
    print(f"\n{gate.text}")
    return 0 if suites_ok and gate.finalized else 1


def print_table(junit: Path) -> None:
    """One line per test: suite, name, outcome, seconds; then the totals."""
    if not junit.exists():
        print("no results were written", file=sys.stderr)
        return
    counts: dict[str, int] = {}
    print(f"\n{'suite':16} {'test':64} {'result':8} {'s':>6}")
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome = next(
            (tag for tag in ("failure", "error", "skipped") if case.find(tag) is not None), "passed"
        )
        outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}.get(outcome, outcome)
        counts[outcome] = counts.get(outcome, 0) + 1
        name = case.get("name", "?")
        print(
            f"{props.get('hil.suite', '-'):16} {name[:64]:64} {outcome:8} {float(case.get('time', 0)):6.1f}"
        )
    print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
