"""`hil rig`: what lab technicians do with rigs."""

from __future__ import annotations

import argparse

from hil.rig import available, load_rig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `hil rig list | show`."""
    rig = subparsers.add_parser("rig", help="list and inspect rigs")
    sub = rig.add_subparsers(dest="rig_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="rigs with their kind and device type").set_defaults(func=_list)
    show = sub.add_parser("show", help="a rig's validated definition")
    show.add_argument("name", help="rig name or rig YAML path")
    show.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    for name in sorted(available()):
        rig = load_rig(name)
        print(f"{name:24} {rig.kind:8} {rig.device_type:18} {rig.path}")
    return 0


def _show(args: argparse.Namespace) -> int:
    rig = load_rig(args.name)
    print(f"# {rig.path}")
    print(rig.spec.model_dump_json(indent=2))
    return 0
