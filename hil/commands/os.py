"""`hil os`: the OS profiles hil knows (its own and the user's), and what one says once merged."""

from __future__ import annotations

# Start-up speed: each command imports what it runs inside its function, so `hil --help` loads none of it.
import argparse
from typing import Any

import yaml


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `hil os list | show`."""
    os_parser = subparsers.add_parser(
        "os",
        help="list and show OS profiles (built in, ./os, $HIL_OS_DIR)",
        description="OS profiles describe the OS under test as data: login, SSH, boot, services, network, "
        "time, updates, features and bounds. A YAML file in ./os or $HIL_OS_DIR `extends:` a profile and "
        "states only what differs.",
    )
    sub = os_parser.add_subparsers(dest="os_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="every profile, where it is defined, its features").set_defaults(func=_list)
    show = sub.add_parser("show", help="a profile merged with what it extends (secrets masked)")
    show.add_argument("name", help="profile name, or a rig name/file to show the rig's profile")
    show.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    from hil.os.loader import available, load_profile

    print(f"{'profile':14} {'defined in':48} features")
    for name, path in sorted(available().items()):
        profile = load_profile(name)
        print(f"{name:14} {path!s:48} {', '.join(sorted(profile.feature_set))}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from hil.errors import RigConfigError
    from hil.os.loader import available, load_profile
    from hil.os.model import MASK

    if args.name in available():
        profile = load_profile(args.name)
    else:
        from hil.lab.rig import load_rig

        try:
            profile = load_rig(args.name).profile
        except RigConfigError as exc:
            known = ", ".join(sorted(available()))
            raise RigConfigError(f"{args.name} is neither an OS profile ({known}) nor a rig: {exc}") from None
    data: dict[str, Any] = profile.model_dump(mode="json")
    login = data.get("login")
    if login and login.get("password") is not None:
        login["password"] = MASK
    data["features"] = sorted(profile.feature_set)
    print(yaml.safe_dump(data, sort_keys=False, width=110), end="")
    return 0
