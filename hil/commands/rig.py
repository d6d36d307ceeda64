"""`hil rig`: what lab technicians do with rigs all day: list, show, power, flash, console, check."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hil.errors import HilError
from hil.rig import VIRTUAL_KINDS, available, load_rig

EXIT_KEY = b"\x1d"  # Ctrl-]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `hil rig list | show | power | flash | console | check`."""
    rig = subparsers.add_parser("rig", help="list, power, flash, watch and health-check rigs")
    sub = rig.add_subparsers(dest="rig_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="rigs: kind, device type, lease holder, health").set_defaults(func=_list)
    show = sub.add_parser("show", help="a rig's validated definition")
    show.add_argument("name", help="rig name or rig YAML path")
    show.set_defaults(func=_show)

    def leased(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("name", help="rig name, rig YAML path, or pool:NAME")
        parser.add_argument(
            "--wait", type=float, default=0, metavar="S", help="wait up to S seconds for the rig's lease"
        )
        return parser

    power = leased("power", "switch a rig's power (the relay of a physical rig)")
    power.add_argument("action", choices=["on", "off", "cycle"])
    power.add_argument(
        "--hold",
        action="store_true",
        help="keep the rig leased and powered until Ctrl-C (virtual rigs need it)",
    )
    power.set_defaults(func=_power)
    flash = leased("flash", "write an image to a physical or twin rig's card, then read it back")
    flash.add_argument("image", type=Path)
    flash.add_argument("--no-verify", action="store_true", help="skip reading the card back")
    flash.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    flash.set_defaults(func=_flash)
    console = leased("console", "power the rig on and attach to its serial console (Ctrl-] leaves)")
    console.add_argument("--image", type=Path, help="virtual rigs: image to boot (default: reference)")
    console.add_argument("--log", type=Path, help="also log the session here (default: the rig's log dir)")
    console.set_defaults(func=_console)
    check = leased("check", "health check: power, mux both ways, card, serial, and a boot with --image")
    check.add_argument("--image", type=Path, help="a known-good image to boot to login")
    check.set_defaults(func=_check)


def _list(args: argparse.Namespace) -> int:
    from hil.locking import holder
    from hil.pool import health, lease_names

    print(f"{'rig':22} {'kind':8} {'device type':18} {'leased by':34} health")
    for name in sorted(available()):
        rig = load_rig(name)
        holders = [f"{lease}: {held}" for lease in lease_names(rig) if (held := holder(lease))]
        checked = health(name)
        print(f"{name:22} {rig.kind:8} {rig.device_type:18} {'; '.join(holders) or '-':34} "
              f"{checked if checked else 'never checked'}")  # fmt: skip
    return 0


def _show(args: argparse.Namespace) -> int:
    rig = load_rig(args.name)
    print(f"# {rig.path}")
    print(rig.spec.model_dump_json(indent=2))
    return 0


@contextmanager
def _leased_dut(args: argparse.Namespace) -> Iterator:
    """Lease the rig (waiting as asked) and give its DUT; both are released on the way out."""
    from hil.paths import cache_dir
    from hil.pool import lease_rig
    from hil.provision import open_dut

    rig, lease = lease_rig(args.name, wait=args.wait)
    with lease:
        dut = open_dut(rig, cache_dir() / "rig-logs" / rig.name)
        try:
            yield dut
        finally:
            dut.close()


def _power(args: argparse.Namespace) -> int:
    import time

    with _leased_dut(args) as dut:
        if dut.rig.kind in VIRTUAL_KINDS and args.action != "off" and not args.hold:
            raise HilError(f"{dut.rig.name} is a {dut.rig.kind} rig: its board lives in this process; "
                           "use --hold (Ctrl-C powers off) or `hil rig console`")  # fmt: skip
        board = dut.board
        if args.action in ("off", "cycle"):
            board.power_off()
        if args.action == "cycle":
            time.sleep(dut.rig.spec.power.off_time if hasattr(dut.rig.spec, "power") else 1.0)
        if args.action in ("on", "cycle"):
            if dut.rig.kind == "qemu":
                from hil.provision import resolve_image

                dut.flash(resolve_image(dut.rig, None))
            board.power_on(time.monotonic() + 60)
        print(f"{dut.rig.name}: power {args.action}")
        if args.hold:
            print("holding the rig; Ctrl-C powers off and releases it", file=sys.stderr)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                board.power_off()
    return 0


def _flash(args: argparse.Namespace) -> int:
    from hil.image import read_info

    if not args.image.is_file():
        raise HilError(f"image {args.image} does not exist")
    with _leased_dut(args) as dut:
        board = dut.board
        mux = getattr(board, "mux", None)
        if mux is None:
            raise HilError(
                f"{dut.rig.name} is a virtual rig: each run flashes a fresh overlay; nothing to write"
            )
        info = read_info(args.image)
        board.power_off()
        card = mux.to_host(timeout=30)
        print(f"image:  {args.image} (device type {info.device_type or '?'}, version {info.version or '?'})")
        print(
            f"target: {card.device} on rig {dut.rig.name}: {card.identity}, {card.size_bytes / 2**30:.2f} GiB"
        )
        if not args.yes:
            if not sys.stdin.isatty():
                raise HilError("not asking on a non-interactive input: pass --yes to write the card")
            if input("write it? every byte on the target is replaced [y/N] ").strip().lower() != "y":
                print("nothing written")
                return 1
        board.verify = not args.no_verify
        dut.flash(args.image)
        print(f"{dut.rig.name}: flashed {args.image}{'' if args.no_verify else ' and verified'}")
    return 0


def _console(args: argparse.Namespace) -> int:
    import time

    from hil.provision import resolve_image
    from hil.serialterm import interact

    with _leased_dut(args) as dut:
        if dut.rig.kind == "qemu" or args.image:
            dut.flash(resolve_image(dut.rig, args.image))
        dut.board.power_on(time.monotonic() + 60)
        transport = dut.board.console_transport(30)
        log = args.log or dut.artifacts / f"console-{time.strftime('%Y%m%d-%H%M%S')}.log"
        print(f"{dut.rig.name}: console attached; Ctrl-] leaves; logging to {log}", file=sys.stderr)
        interact(transport, log, EXIT_KEY)
    return 0


def _check(args: argparse.Namespace) -> int:
    from hil.rigcheck import check_rig

    with _leased_dut(args) as dut:
        image = args.image
        if image is None and dut.rig.kind in VIRTUAL_KINDS:
            from hil.provision import resolve_image

            image = resolve_image(dut.rig, None)
        steps = check_rig(dut, image)
    for step in steps:
        print(f"{'ok  ' if step.ok else 'FAIL'} {step.name:8} {step.detail}")
    healthy = all(s.ok for s in steps)
    print(f"{dut.rig.name}: {'healthy' if healthy else 'UNHEALTHY: pools skip it until it is checked again'}")
    return 0 if healthy else 1
