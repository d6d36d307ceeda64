"""The console side of bringing a DUT up: attach its console, wait for the login and log in, see a reboot
begin. A wait that runs out is a BootTimeout giving the bound, the transcript and the last console lines;
a refused login names the user, the OS profile and where the password came from."""

from __future__ import annotations

import re
import time
from pathlib import Path

from hil.console.engine import Console
from hil.console.uart import SerialTransport
from hil.dut.boards import Board
from hil.errors import BootTimeout, ConsoleTimeout, LoginRefused
from hil.os.model import OsProfile


def attach_console(board: Board, transcript: Path, name: str, deadline: float, started: float) -> Console:
    """The board's console line, its text going on in `transcript`; `started` is power-on (monotonic)."""
    transport = board.console_transport(max(1.0, deadline - time.monotonic()))
    console = Console(transport, transcript, name=name, closed_reason=board.exit_reason, started=started)
    if isinstance(transport, SerialTransport):  # a USB adapter can vanish and return: mark the gap
        transport.on_gap = lambda seconds: console.note(f"console line lost for {seconds:.1f} s; reconnected")
    return console


def await_login(
    console: Console, profile: OsProfile, name: str, *, after: str, timeout: float, left: float
) -> None:
    """Wait for the console's login (`left` seconds of `timeout`) and log in where the profile says how."""
    login, boot = profile.login, profile.boot
    try:
        if login is None:
            console.await_login_prompt(boot.login_prompt, timeout=left, wake=boot.wake_console)
        else:
            password = login.secret(profile.name)
            console.login(
                login.user, password, login_prompt=boot.login_prompt, timeout=left, wake=boot.wake_console
            )
    except ConsoleTimeout:
        raise BootTimeout(
            f"no login within {timeout:.0f} s after {after} on {name}; "
            f"transcript: {console.transcript}\nlast console lines:\n{console.tail(10)}"
        ) from None
    except LoginRefused as exc:
        assert login is not None  # only a login can be refused
        evidence = str(exc).split(". ", 1)[-1]
        source = f"login.password_env {login.password_env}" if login.password_env else "login.password"
        raise LoginRefused(
            f"the console of {name} refused the login as {login.user!r} (OS profile "
            f"{profile.name!r}): wrong user or password? check {source}\n{evidence}"
        ) from None


def await_restart(console: Console, pattern: str, limit: float, after: str) -> re.Match[str]:
    """Where the console shows the reboot under way (the profile's restart pattern), within `limit`."""
    try:
        return console.expect(pattern, limit)
    except ConsoleTimeout:
        raise BootTimeout(
            f"the DUT did not restart within {limit:.0f} s after {after}; transcript: "
            f"{console.transcript}\nlast console lines:\n{console.tail(10)}"
        ) from None
