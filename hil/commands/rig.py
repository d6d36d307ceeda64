"""`hil rig`: the lab technician's commands: list, show, discover, power, flash, console, check, hold.

A command lets go of a rig as it finds it when done: the relay stays as the command left it (`power on`
leaves the DUT powered), so a technician can power a board and then watch it, across commands. Only a
virtual board, which lives in the hil process, stops with the command.
"""

from __future__ import annotations

# Start-up speed: each command imports what it runs inside its function, so `hil --help` loads none of it.
import argparse
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hil.errors import HilError

EXIT_KEY = b"\x1d"  # Ctrl-]
_SECRET = re.compile(r"(^|_)(psk|password|passphrase|secret|token|api_key)$", re.IGNORECASE)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `hil rig list | show | discover | power | flash | console | check | hold`."""
    rig = subparsers.add_parser("rig", help="list, power, flash, watch, hold and health-check rigs")
    sub = rig.add_subparsers(dest="rig_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="rigs: kind, device type, lease holder, health").set_defaults(func=_list)
    show = sub.add_parser("show", help="a rig's validated definition (secrets masked)")
    show.add_argument("name", help="rig name or rig YAML path")
    show.set_defaults(func=_show)
    sub.add_parser(
        "discover", help="USB card readers, SD muxes and serial adapters on this host, as rig-file YAML"
    ).set_defaults(func=_discover)

    def leased(name: str, help_text: str, forcible: bool = True) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("name", help="rig name, rig YAML path, or pool:NAME")
        parser.add_argument(
            "--wait", type=float, default=0, metavar="S", help="wait up to S seconds for the rig's lease"
        )
        if forcible:
            parser.add_argument(
                "--force", action="store_true", help="use the rig even though its last check failed"
            )
        return parser

    power = leased("power", "switch a rig's power (the relay of a physical rig); it stays so afterwards")
    power.add_argument("action", choices=["on", "off", "cycle"])
    power.add_argument(
        "--hold",
        action="store_true",
        help="keep the rig leased and powered until Ctrl-C, which powers off (virtual rigs need it)",
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
    check = leased(
        "check",
        "health check: power, mux both ways, card, serial, and a boot with --image; the verdict is kept on "
        "this host (what pools go by) and in the store ($HIL_STORE) with the console, for the dashboard",
        forcible=False,
    )
    check.add_argument("--image", type=Path, help="a known-good image to boot to login")
    check.set_defaults(func=_check)
    hold = leased(
        "hold",
        "hold the rig's lease while a shell ($SHELL, or the command after --) runs; hil commands inside "
        "use the rig without leasing it again, and the lease ends with the shell or a killed hold",
    )
    hold.add_argument(
        "command", nargs=argparse.REMAINDER, help="after --: the command to run instead of $SHELL"
    )
    hold.set_defaults(func=_hold)


def _list(args: argparse.Namespace) -> int:
    from hil.lab.pool import health, leases
    from hil.lab.rig import available, load_rig

    print(f"{'rig':22} {'kind':8} {'device type':18} {'leased by':34} health")
    for name in sorted(available()):
        rig = load_rig(name)
        holders = []
        for lease in leases(rig):
            if held := lease.holder():
                # Another rig file naming the same hardware holds it: say which.
                alias = f" as {held.lease}" if held.lease and held.lease != lease.rig_name else ""
                holders.append(f"{lease.rig_name}: {held}{alias}")
        checked = health(name)
        print(f"{name:22} {rig.kind:8} {rig.device_type:18} {'; '.join(holders) or '-':34} "
              f"{checked if checked else 'never checked'}")  # fmt: skip
    return 0


def _show(args: argparse.Namespace) -> int:
    import json

    from hil.lab.rig import load_rig

    rig = load_rig(args.name)
    print(f"# {rig.path}")
    print(json.dumps(_masked(rig.spec.model_dump(mode="json")), indent=2))  # SecretStr dumps masked too
    return 0


def _masked(value: Any) -> Any:
    """The dump with every password-like field masked, wherever it sits (an inline OS profile too)."""
    if isinstance(value, dict):
        return {k: "**********" if _SECRET.search(str(k)) and v else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _discover(args: argparse.Namespace) -> int:
    from hil.lab.discover import discover, render, usb_devices

    devices = usb_devices()
    if found := discover(devices):
        print(render(found), end="")
    elif devices:
        print(f"none of the {len(devices)} USB devices pyusb sees is a card reader, SD mux or serial adapter")
    else:
        print("pyusb sees no USB devices on this host: no card reader, SD mux or serial adapter to list")
    return 0


@contextmanager
def _leased_dut(args: argparse.Namespace, force: bool | None = None) -> Iterator:
    """Lease the rig (waiting as asked) and give its DUT; on the way out, let go of both, the rig as it is."""
    from hil.dut.provision import open_dut
    from hil.lab.pool import lease_rig
    from hil.util.paths import cache_dir

    rig, lease = lease_rig(args.name, wait=args.wait, force=args.force if force is None else force)
    with lease:
        dut = open_dut(rig, cache_dir() / "rig-logs" / rig.name)
        try:
            yield dut
        finally:
            # Not dut.close(): that powers the board off first, as a test session must end.
            if dut.console is not None:
                dut.console.close()
            dut.board.close()


def _power(args: argparse.Namespace) -> int:
    import time

    from hil.drivers.capabilities import PowerRelay, SdMuxControl

    with _leased_dut(args) as dut:
        rig = dut.rig
        relay = dut.capability(PowerRelay)
        if relay is None and args.action != "off" and not args.hold:
            raise HilError(f"{rig.name} is a virtual rig: its board lives in this process; "
                           "use --hold (Ctrl-C powers off) or `hil rig console`")  # fmt: skip
        board = dut.board
        if args.action in ("off", "cycle"):
            board.power_off()
        if args.action == "cycle":
            time.sleep(relay.off_time if relay is not None else 1.0)
        if args.action in ("on", "cycle"):
            if dut.capability(SdMuxControl) is None:  # no card that keeps its image: flash a fresh overlay
                from hil.dut.provision import resolve_image

                dut.flash(resolve_image(rig, None))
            board.power_on(time.monotonic() + 60)
        print(f"{rig.name}: power {args.action}")
        if rig.kind == "twin" and args.action != "off" and not args.hold:
            print(f"{rig.name}: the relay stays closed; the twin's board runs while a hil process has it "
                  f"open, so `hil rig console {args.name}` (or a command inside `hil rig hold`) starts it",
                  file=sys.stderr)  # fmt: skip
        if args.hold:
            print("holding the rig; Ctrl-C powers off and releases it", file=sys.stderr)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                board.power_off()
    return 0


def _flash(args: argparse.Namespace) -> int:
    from hil.images.device_type import read_info

    if not args.image.is_file():
        raise HilError(f"image {args.image} does not exist")
    from hil.drivers.capabilities import SdMuxControl

    with _leased_dut(args) as dut:
        board = dut.board
        muxed = dut.capability(SdMuxControl)
        if muxed is None:
            raise HilError(
                f"{dut.rig.name} is a virtual rig: each run flashes a fresh overlay; nothing to write"
            )
        mux = muxed.sd_mux()
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

    from hil.console.terminal import interact
    from hil.drivers.capabilities import SdMuxControl
    from hil.dut.provision import resolve_image

    with _leased_dut(args) as dut:
        if dut.capability(SdMuxControl) is None or args.image:  # no card that keeps an image: flash one
            dut.flash(resolve_image(dut.rig, args.image))
        dut.board.power_on(time.monotonic() + 60)
        transport = dut.board.console_transport(30)
        log = args.log or dut.artifacts / f"console-{time.strftime('%Y%m%d-%H%M%S')}.log"
        print(f"{dut.rig.name}: console attached; Ctrl-] leaves; logging to {log}", file=sys.stderr)
        interact(transport, log, EXIT_KEY)
    return 0


def _check(args: argparse.Namespace) -> int:
    from hil.dut.check import check_rig
    from hil.lab.rig import VIRTUAL_KINDS

    # An unhealthy rig is exactly what a check is for. What its console prints meanwhile goes into the store
    # with the verdict (the health file on this host stays what pools decide by).
    with _leased_dut(args, force=True) as dut:
        image = args.image
        if image is None and dut.rig.kind in VIRTUAL_KINDS:
            from hil.dut.provision import resolve_image

            image = resolve_image(dut.rig, None)
        steps = check_rig(dut, image)
    for step in steps:
        print(f"{'ok  ' if step.ok else 'FAIL'} {step.name:8} {step.detail}")
    healthy = all(s.ok for s in steps)
    verdict = (
        "healthy" if healthy else "UNHEALTHY: pools skip it, and naming it needs --force, until it passes"
    )
    print(f"{dut.rig.name}: {verdict}")
    return 0 if healthy else 1


def _hold(args: argparse.Namespace) -> int:
    import shlex
    import signal
    import subprocess

    from hil.lab.locking import HELD_ENV
    from hil.lab.pool import lease_rig
    from hil.util.hostproc import die_with_parent

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    command = command or [os.environ.get("SHELL") or "/bin/sh"]
    rig, lease = lease_rig(args.name, wait=args.wait, force=args.force)
    with lease:
        print(f"{rig.name}: held as {lease.rig_name} by pid {os.getpid()} while `{shlex.join(command)}` "
              f"runs; hil commands inside use it ({HELD_ENV}={lease.rig_name})", file=sys.stderr)  # fmt: skip
        try:
            # The lease's locks are close-on-exec: the child never holds them, so killing the hold frees the
            # rig; the child dies with the hold, and hil commands inside stop when it goes (hil.lab.locking).
            child = subprocess.Popen(
                command, env={**os.environ, HELD_ENV: lease.rig_name}, preexec_fn=die_with_parent
            )
        except OSError as exc:
            raise HilError(f"cannot run {command[0]}: {exc.strerror}") from None
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the shell's, not the hold's
        try:
            status = child.wait()
        finally:
            signal.signal(signal.SIGINT, previous)
    print(f"{rig.name}: released", file=sys.stderr)
    return status if status >= 0 else 128 - status
