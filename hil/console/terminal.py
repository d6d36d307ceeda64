"""An interactive terminal on a console transport, for `hil rig console`: keys go to the DUT,
its output to the screen and a log file; the exit key (Ctrl-]) or the end of piped input leaves."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import tty
from collections.abc import Iterator
from pathlib import Path

from hil.console.transport import Transport


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    """Raw keyboard on a terminal (every key goes to the DUT); untouched when input is piped."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def interact(transport: Transport, log: Path, exit_key: bytes, stdin: int = 0, stdout: int = 1) -> None:
    """Shuttle bytes between the user and the DUT until the exit key or the end of input."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as record, _raw(stdin):
        while True:
            data = transport.read(0.05)
            if data:
                os.write(stdout, data)
                record.write(data)
                record.flush()
            ready, _, _ = select.select([stdin], [], [], 0)
            if not ready:
                continue
            keys = os.read(stdin, 1024)
            if not keys or exit_key in keys:
                keys = keys.split(exit_key)[0]
                if keys:
                    transport.write(keys)
                break
            transport.write(keys)
    transport.close()
    print(f"\r\nconsole closed; log: {log}", file=sys.stderr)
