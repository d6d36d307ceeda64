"""`hil release ...`: create, list, show and gate releases, and print the recorded evidence."""

from __future__ import annotations

# Start-up speed: each command imports what it runs inside its function, so `hil --help` loads none of it.
import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hil.commands.runs import build_tag
from hil.errors import HilError
from hil.store.help import STORE_HELP

if TYPE_CHECKING:
    from hil.release.store import ReleaseImage, ReleaseStore


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `release` and its subcommands; each sets `func(args) -> exit code`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="PATH|URL", help=STORE_HELP)
    release = subparsers.add_parser("release", help="release gating: drafts become final on passing evidence")
    commands = release.add_subparsers(dest="release_command", required=True, metavar="COMMAND")

    create = commands.add_parser("create", parents=[common], help="create a draft release")
    create.add_argument("--version", required=True, help="the OS version this release is")
    create.add_argument("--device-type", dest="device_types", nargs="+", required=True, metavar="TYPE")
    create.add_argument("--image", dest="images", action="append", required=True, metavar="[TYPE=]PATH",
                        help="the image the release ships, recorded by content hash; repeat as TYPE=PATH "
                        "for several device types")  # fmt: skip
    create.set_defaults(func=_create)

    commands.add_parser("list", parents=[common], help="list releases").set_defaults(func=_list)

    balena = argparse.ArgumentParser(add_help=False)
    balena.add_argument("--balena", action="store_true", help="the release lives on balena (BALENA_API_KEY)")
    balena.add_argument(
        "--balena-api", metavar="URL", help="balena API root (default: $BALENA_API_URL, else balenaCloud)"
    )

    show = commands.add_parser("show", parents=[common, balena], help="a release's status and decisions")
    show.add_argument("release_id", metavar="ID", help="release id (sqlite) or balena release id")
    show.set_defaults(func=_show)

    gate = commands.add_parser(
        "gate", parents=[common, balena], help="decide on a release; exit 0 final, 1 refused"
    )
    gate.add_argument("release_id", metavar="ID", help="release id (sqlite) or balena release id")
    gate.add_argument(
        "--results",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="directories holding JUnit XML and/or allure-results (searched recursively)",
    )
    gate.add_argument("--run", dest="runs", action="append", default=[], metavar="RUN",
                      help="a run recorded in the store (`hil runs list`): its JUnit file, as recorded, is "
                      "evidence like a results directory's (repeatable)")  # fmt: skip
    gate.add_argument("--build-tag", type=build_tag, metavar="TAG",
                      help="every run recorded in the store with this CI build tag ($BUILD_TAG) is evidence, "
                      "as with --run")  # fmt: skip
    gate.add_argument("--missing-from", type=Path, metavar="FILE",
                      help="why CI has no results for some device types, a 'TYPE: missing: WHY' line each "
                      "(the Jenkinsfile's gate/missing.txt): each is refused with its reason")  # fmt: skip
    gate.add_argument("--policy", type=Path, help="gate policy (default: ./gate.yaml, else hil's gate.yaml)")
    gate.add_argument("--dry-run", action="store_true", help="decide and report, change nothing")
    gate.add_argument("--report-dir", type=Path, help="where summary.md/.html and evidence.json go")
    gate.add_argument("--image", dest="images", action="append", default=[], metavar="[TYPE=]PATH",
                      help="the image the results must be about: must be the release's own; names it for a "
                      "balena release, which records none")  # fmt: skip
    gate.set_defaults(func=_gate)

    evidence = commands.add_parser("evidence", parents=[common], help="the recorded proof, as JSON")
    evidence.add_argument("release_id", metavar="ID", help="release id")
    evidence.set_defaults(func=_evidence)


def _store(args: argparse.Namespace) -> ReleaseStore:
    from hil.release.balena_store import BalenaStore
    from hil.release.sqlite_store import SqliteStore

    if getattr(args, "balena", False) or getattr(args, "balena_api", None):
        return BalenaStore(args.balena_api)
    return SqliteStore(args.store)


def _create(args: argparse.Namespace) -> int:
    from hil.release.sqlite_store import SqliteStore
    from hil.release.store import checked_device_type, checked_version

    version = checked_version(args.version)
    images = named_images(version, [checked_device_type(dt) for dt in args.device_types], args.images)
    release = SqliteStore(args.store).create(version, images)
    print(f"release {release.id}: version {release.version}, {', '.join(release.device_types)}, draft")
    for device_type, image in sorted(release.images.items()):
        print(f"  {device_type}: {image.path} (sha256 {image.sha256})")
    return 0


def named_images(version: str, device_types: list[str], given: list[str]) -> dict[str, ReleaseImage]:
    """`[TYPE=]PATH` arguments as the image for each device type, hashed; each image must not say it is
    for another device type or version than the release."""
    from hil.images.device_type import read_info
    from hil.images.hash import image_sha256
    from hil.release.store import ReleaseImage

    images: dict[str, ReleaseImage] = {}
    for arg in given:
        prefix, _, rest = arg.partition("=")
        if rest and prefix in device_types:
            device_type, path = prefix, Path(rest)
        elif len(device_types) == 1:
            device_type, path = device_types[0], Path(arg)
        else:
            raise HilError(f"--image {arg}: say which device type it is for: --image TYPE=PATH")
        if device_type in images:
            raise HilError(f"--image {arg}: {device_type} already has an image ({images[device_type].path})")
        info = read_info(path)
        if info.device_type and info.device_type != device_type:
            raise HilError(f"image {path} is built for {info.device_type}, not {device_type}")
        if info.version and info.version != version:
            raise HilError(f"image {path} says it is version {info.version}, not {version}")
        images[device_type] = ReleaseImage(sha256=image_sha256(path), path=str(path.resolve()))
    return images


def _list(args: argparse.Namespace) -> int:
    from hil.release.sqlite_store import SqliteStore

    for r in SqliteStore(args.store).releases():
        finalized = f"  final since {r.finalized_at}" if r.finalized_at else ""
        types = ",".join(r.device_types)
        print(f"{r.id:>4}  {r.status:<11}  {r.version:<16}  {types}  {r.created}{finalized}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from hil.release.sqlite_store import SqliteStore

    store = _store(args)
    r = store.get(args.release_id)
    print(f"release {r.id}: version {r.version}, status {r.status}")
    if r.device_types:
        print(f"  device types: {', '.join(r.device_types)}")
    if r.created:
        print(f"  created {r.created}" + (f", finalized {r.finalized_at}" if r.finalized_at else ""))
    for device_type, image in sorted(r.images.items()):
        print(f"  image for {device_type}: {image.path} (sha256 {image.sha256})")
    if isinstance(store, SqliteStore):
        for d in store.evidence(r.id):
            reasons = d["decision"]["reasons"]
            why = f": {reasons[0]}" if reasons else ""
            why += f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
            print(f"  decision {d['id']} {d['decided_at']} by {d['who']}: {d['outcome']}{why}")
    return 0


def _gate(args: argparse.Namespace) -> int:
    from hil.lab.suites import suite_paths
    from hil.release.api import gate_release, recorded_runs
    from hil.release.catalog import collect
    from hil.release.policy import load_policy
    from hil.runs.store import RunStore

    if not args.results and not args.runs and not args.build_tag:
        raise HilError(
            "give the evidence: --results DIR, --run RUN and/or --build-tag TAG (runs recorded in the store)"
        )
    store = _store(args)
    runs = (
        recorded_runs(RunStore(args.store), args.runs, args.build_tag) if args.runs or args.build_tag else []
    )
    images = {}
    if args.images:
        release = store.get(args.release_id)
        device_types = list(release.device_types) or list(load_policy(args.policy).model.device_types)
        images = named_images(release.version, device_types, args.images)
    result = gate_release(
        store,
        args.release_id,
        results=args.results,
        catalog=collect(suite_paths(None)),
        policy=args.policy,
        dry_run=args.dry_run,
        report_dir=args.report_dir,
        images=images,
        runs=runs,
        build_tag=args.build_tag,
        missing_from=args.missing_from,
    )
    print(result.text)
    return result.exit_code


def _evidence(args: argparse.Namespace) -> int:
    from hil.release.sqlite_store import SqliteStore

    print(json.dumps(SqliteStore(args.store).evidence(args.release_id), indent=2, sort_keys=True))
    return 0
