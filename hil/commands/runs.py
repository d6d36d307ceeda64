"""`hil runs list | show | push`: the recorded runs, read back from the store; and a run kept beside its
artifacts while the store was unreachable, recorded now."""

from __future__ import annotations

# Start-up speed: each command imports what it runs inside its function, so `hil --help` loads none of it.
import argparse
from pathlib import Path

from hil.errors import HilError
from hil.runs.model import KEPT
from hil.store.help import STORE_HELP


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `runs` and its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="PATH|URL", help=STORE_HELP)
    runs = subparsers.add_parser("runs", help="recorded runs: tests, durations, boot times, artifacts")
    commands = runs.add_subparsers(dest="runs_command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", parents=[common], help="recorded runs, newest first")
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs (default: 20)")
    listing.add_argument("--device-type", metavar="SLUG", help="only runs on this device type")
    listing.add_argument("--rig", metavar="NAME", help="only runs on this rig")
    listing.add_argument("--build-tag", type=build_tag, metavar="TAG",
                         help="only runs of this CI build ($BUILD_TAG when recorded)")  # fmt: skip
    listing.set_defaults(func=_list)
    show = commands.add_parser("show", parents=[common], help="one run: its facts, every test, artifacts")
    show.add_argument("run_id", metavar="RUN", help="run id (hil.run_id) or row number")
    show.set_defaults(func=_show)
    push = commands.add_parser(
        "push", parents=[common], help=f"record a run kept ({KEPT}) while the store was unreachable"
    )
    push.add_argument("directory", type=Path, metavar="DIR", help="the run's artifacts directory")
    push.set_defaults(func=_push)


def build_tag(text: str) -> str:
    """A CI build tag as an argument: not empty (an empty tag would name every untagged run)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "a build tag is not empty (Jenkins's $BUILD_TAG, e.g. jenkins-job-42)"
        )
    return text.strip()


def _list(args: argparse.Namespace) -> int:
    from hil.runs.store import RunStore

    store = RunStore(args.store)
    runs = store.runs(limit=args.limit, device_type=args.device_type, rig=args.rig, build_tag=args.build_tag)
    print(
        f"{'run':12}  {'started':25}  {'rig':16}  {'device type':14}  {'os':10}  pass fail skip  exit  boot s"
    )
    for r in runs:
        boot = f"{r.boot_seconds:6.1f}" if r.boot_seconds is not None else "     -"
        counts = f"{r.passed:4} {r.failed:4} {r.skipped:4}  {r.exitstatus:4}"
        print(f"{r.run_id:12}  {r.started:25}  {r.rig[:16]:16}  {r.device_type[:14]:14}  "
              f"{(r.os_version or '-')[:10]:10}  {counts}  {boot}")  # fmt: skip
    total = store.count(args.device_type, args.rig, args.build_tag)
    if total > len(runs):
        print(f"({len(runs)} of {total}; --limit shows more)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from hil.runs.store import RunStore

    run = RunStore(args.store).get(args.run_id)
    facts = run.facts
    print(
        f"run {run.run_id} (#{run.id}): {run.started} .. {run.finished}, pytest exit status {run.exitstatus}"
    )
    print(f"  rig {run.rig}, device type {run.device_type}" + (
        f" ({facts.device_type_source})" if facts.device_type_source else ""))  # fmt: skip
    print(f"  image {run.image or '-'} (sha256 {run.image_sha256 or '-'})")
    if run.build_tag:
        print(f"  CI build {run.build_tag}")
    print(f"  OS version {run.os_version or '-'}, profile {run.os_profile or '-'}")
    phases = ", ".join(f"{name} {s:.2f} s" for name, s in facts.boot_phases.items())
    boot = f"{run.boot_seconds:.2f} s" if run.boot_seconds is not None else "-"
    print(f"  boot {boot}" + (f" ({phases})" if phases else ""))
    print(f"  {run.passed} passed, {run.failed} failed, {run.skipped} skipped in {run.seconds:.1f} s")
    for problem in facts.problems:
        print(f"  not evidence: {problem}")
    print(f"\n{'suite':16} {'test':56} {'result':8} {'s':>7}  reason")
    for t in run.tests:
        reason = t.message.splitlines()[0] if t.message else ""
        print(f"{t.suite[:16]:16} {t.test[:56]:56} {t.outcome:8} {t.seconds:7.2f}  {reason[:100]}")
    print(f"\njunit:       {run.junit_path} (sha256 {run.junit_sha256})")
    print(f"artifacts:   {facts.artifacts}")
    for transcript in facts.transcripts:
        print(f"transcript:  {transcript}")
    if facts.allure:
        print(f"allure:      {facts.allure}")
    return 0


def _push(args: argparse.Namespace) -> int:
    """Record the run kept in DIR; once recorded (now, or already with the same JUnit file), the kept file
    goes."""
    from hil.runs.kept import kept_file, load
    from hil.runs.store import AlreadyRecorded, RunStore

    path = kept_file(args.directory)
    run, junit, meant = load(args.directory)
    store = RunStore(args.store)
    try:
        row = store.record(run, junit)
        print(f"run {run.run_id} recorded in {store.where} as #{row} (hil runs show {run.run_id})")
    except AlreadyRecorded as exc:
        if not exc.same:
            raise HilError(f"{exc}, with another JUnit file: {path} is kept") from None
        print(f"run {run.run_id} is already recorded in {store.where}; nothing to push")
    if meant and meant != store.where:
        print(f"note: the run was meant for {meant}")
    path.unlink(missing_ok=True)
    return 0
