"""`hil faults`: break an image on purpose, one fault at a time, and show which suite catches each."""

from __future__ import annotations

# Start-up speed: each command imports what it runs inside its function, so `hil --help` loads none of it.
import argparse
import sys
from datetime import datetime
from pathlib import Path

from hil.store.help import STORE_HELP


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `hil faults list | run`."""
    faults = subparsers.add_parser(
        "faults",
        help="test the tests: inject faults into copies of an image and see which suite catches each",
        description="A suite that passes proves little until it has been seen to fail for the right reason. "
        "Each fault in the OS profile's catalogue (faults/<profile>.yaml beside the profiles: hil's, ./os, "
        "$HIL_OS_DIR) breaks one thing in a copy of the image and names the test that must catch it and what "
        "its failure must say.",
    )
    sub = faults.add_subparsers(dest="faults_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the faults of an OS profile, and whether each applies")
    listing.add_argument("--os", metavar="PROFILE", help="OS profile (default: the --rig's)")
    listing.add_argument(
        "--rig", default="qemu-x86_64", help="rig whose OS profile to list (default: qemu-x86_64)"
    )
    listing.set_defaults(func=_list)
    run = sub.add_parser(
        "run",
        help="a healthy control, then each fault on its own copy of the image; prints the matrix",
        description="Runs the healthy image first (or uses a recorded run of the same image in which every "
        "test that must catch passed), then, for each fault, the suites that should catch it on a copy of "
        "the image with the fault injected. Prints the matrix of fault against suite and records it in the "
        "store. Exit status: 0 only when every applicable fault was caught; 2 when the control failed.",
    )
    run.add_argument("--rig", default="qemu-x86_64", help="rig name or YAML, NAME#INSTANCE, pool:NAME")
    run.add_argument("--device-type", metavar="SLUG",
                     help="device type of an --image that names none (recorded as asserted)")  # fmt: skip
    run.add_argument(
        "--image", type=Path, help="image to break (default on virtual rigs: the reference image)"
    )
    run.add_argument(
        "--fault",
        action="append",
        dest="faults",
        metavar="NAME",
        help="fault to run (repeatable; default: all)",
    )
    run.add_argument("--suite", action="append", dest="suites", metavar="NAME",
                     help="only faults this suite must catch (repeatable)")  # fmt: skip
    run.add_argument("--only-named", action="store_true",
                     help="run only the tests that must catch each fault, not their whole suites (quicker; "
                          "the matrix then says nothing of what else a fault breaks)")  # fmt: skip
    run.add_argument("-n", "--boards", type=int, metavar="N",
                     help="faults at once, each on its own board (default: on a QEMU rig one per CPU core, "
                          "at most the rig's instances; else 1)")  # fmt: skip
    run.add_argument("--artifacts", type=Path, help="output directory (default: ./artifacts/faults-<time>)")
    run.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS",
                     help="bound on each session, control included (default: 3600)")  # fmt: skip
    run.add_argument("--pool-wait", type=float, default=600.0, metavar="SECONDS",
                     help="how long to wait for a free rig (default: 600)")  # fmt: skip
    run.add_argument(
        "--fresh-control", action="store_true", help="run the control even if a recorded run can stand in"
    )
    run.add_argument("--store", help=STORE_HELP)
    run.set_defaults(func=_run)


def _list(args: argparse.Namespace) -> int:
    from hil.faults.catalogue import catalogue_files, load_catalogue, not_applicable
    from hil.lab.pool import rig_for
    from hil.os.loader import load_profile

    profile = load_profile(args.os) if args.os else rig_for(args.rig).profile
    files = catalogue_files(profile)
    print(f"OS profile {profile.name}: {', '.join(map(str, files)) or 'no fault catalogue'}")
    for named in load_catalogue(profile):
        why = not_applicable(named.fault, profile)
        wanted = named.fault.caught_by
        status = f"  (not applicable: {why})" if why else ""
        print(f"\n{named.name}{status}\n  {named.fault.description}\n"
              f"  caught by {wanted.suite} {wanted.test}: /{wanted.message}/")  # fmt: skip
    return 0


def _run(args: argparse.Namespace) -> int:
    from hil.dut.boards import preflight
    from hil.dut.provision import resolve_image
    from hil.errors import HilError
    from hil.faults.matrix import render
    from hil.faults.record import FaultStore
    from hil.faults.report import write_report
    from hil.faults.runner import Options, chosen_faults, run
    from hil.lab.pool import lease_count, rig_for
    from hil.lab.suites import auto_boards

    rig = rig_for(args.rig)
    faults = chosen_faults(rig, args.faults, args.suites)  # a wrong catalogue is refused before any build
    preflight(rig)
    image = resolve_image(rig, args.image)
    artifacts = args.artifacts or Path.cwd() / "artifacts" / datetime.now().strftime("faults-%Y%m%d-%H%M%S")
    boards = args.boards or auto_boards(rig, lease_count(args.rig), len(faults))
    options = Options(rig=args.rig, image=image, artifacts=artifacts, only_named=args.only_named,
                      boards=boards, pool_wait=args.pool_wait, timeout=args.timeout, store=args.store,
                      fresh_control=args.fresh_control, device_type=args.device_type)  # fmt: skip
    print(f"hil faults: rig {rig.name} ({rig.device_type}, OS profile {rig.profile.name}); image {image}; "
          f"{boards} board(s) at once; artifacts {artifacts}", file=sys.stderr)  # fmt: skip
    matrix = run(rig, faults, options, lambda line: print(line, file=sys.stderr, flush=True))
    if matrix is None:
        return 2
    print("\n" + render(matrix))
    try:  # first, so the files carry the matrix's number in the store
        store = FaultStore(args.store)
        matrix.id = store.record(matrix)
        recorded = f"hil faults: matrix {matrix.id} in {store.where} (hil serve: /faults/{matrix.id})"
    except HilError as exc:
        recorded = f"hil faults: the matrix was not recorded ({exc}); it is in faults.json"
    files = write_report(matrix, artifacts)
    print(f"\nreport: {files[2]}\n{recorded}", file=sys.stderr)
    return 0 if matrix.passed else 1
