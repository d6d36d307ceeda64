"""`hil`: one command tree for lab technicians, CI agents and release automation."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hil import __version__
from hil.errors import FaultError, HilError, ImageError, RigConfigError, ToolMissing

# Command modules, each with add_parser(subparsers); imported lazily so `hil --help` stays fast.
COMMANDS = (
    "hil.commands.run",
    "hil.commands.image",
    "hil.commands.rig",
    "hil.commands.os",
    "hil.commands.release",
    "hil.commands.runs",
    "hil.commands.serve",
    "hil.commands.faults",
)
USAGE_ERRORS = (RigConfigError, ToolMissing, ImageError, FaultError)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = argparse.ArgumentParser(
        prog="hil",
        description="Hardware-in-the-loop testing: flash and boot boards (QEMU or physical rigs), run the "
        "suites, and gate draft releases on the results.",
        epilog="Run `hil COMMAND --help` for each command. Errors are one line; --debug shows the traceback.",
    )
    parser.add_argument("--version", action="version", version=f"hil {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hil` console script."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("paramiko", "qemu.qmp", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    try:
        return int(args.func(args) or 0)
    except HilError as exc:
        if args.debug:
            raise
        first, *rest = str(exc).splitlines() or [""]
        red = "\x1b[31m" if sys.stderr.isatty() else ""
        reset = "\x1b[0m" if red else ""
        print(f"{red}hil: {type(exc).__name__}: {first}{reset}", file=sys.stderr)
        for line in rest:
            print(f"  {line}", file=sys.stderr)
        return 2 if isinstance(exc, USAGE_ERRORS) else 1
    except KeyboardInterrupt:
        print("hil: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
