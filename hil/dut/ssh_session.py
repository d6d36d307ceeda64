"""hil's SSH session with a DUT: its key and how the key gets there, the DUT's pinned host key, the link,
and what the console says when SSH fails.

A session is opened after every boot, restore and reboot (reconnecting closes the one before). The host
key the DUT first shows is pinned until a reflash; a snapshot restore pins the key its boot showed. A
session that cannot be opened says what the console shows of the SSH server, in the same line.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Protocol

import paramiko

from hil.console.engine import Console
from hil.console.result import CommandResult
from hil.console.ssh import HostKeyPin, SshLink, authorize_key_command, generate_key, load_key
from hil.errors import BootTimeout, HilError, SshError
from hil.lab.rig import Timeouts
from hil.os.model import OsProfile

log = logging.getLogger("hil.dut")


class Endpoint(Protocol):
    """Where the DUT's SSH server answers (a board: a host port forward, or the device's address)."""

    ssh_host: str
    ssh_port: int


class SshSession:
    """One DUT's SSH: hil's key, the pinned host key, and at most one open link."""

    def __init__(self, name: str, profile: OsProfile, endpoint: Endpoint, timeouts: Timeouts) -> None:
        self.name = name
        self.profile = profile
        self.endpoint = endpoint
        self.timeouts = timeouts
        key_file = profile.ssh.key_file
        self.key, self.public_key = load_key(key_file) if key_file else generate_key()
        self.pin = HostKeyPin()
        self.link: SshLink | None = None

    @property
    def host_key(self) -> paramiko.PKey | None:
        """The DUT's host key as pinned, or None before the first session since a flash."""
        return self.pin.key

    def forget_host(self) -> None:
        """The DUT was reflashed and makes new host keys: trust the next one it shows."""
        self.pin.reset()

    def trust_host(self, key: paramiko.PKey | None) -> None:
        """Pin `key`: the host key a restored snapshot's boot showed."""
        self.pin.key = key

    def connect(self, console: Console | None) -> None:
        """Open a session (closing any before) and wait for the profile's ready command.

        `console` is hil's logged-in console shell, or None where hil has none: where the profile says so,
        hil's key is added to authorized_keys there first, and a failure is diagnosed there.
        """
        self.close()
        ssh = self.profile.ssh
        if ssh.key_file is None and ssh.key_injection == "console":
            self._authorize_key(console)
        link = SshLink(self.endpoint.ssh_host, self.endpoint.ssh_port, ssh.user, self.key, self.pin)
        try:
            link.connect(time.monotonic() + self.timeouts.ssh)
        except SshError as exc:
            raise SshError(f"{exc}{self.diagnosis(console)}") from None
        self.link = link
        self._await_boot_finished(link)

    def os_version(self) -> str | None:
        """What the profile's version command prints, or None where it states none."""
        command = self.profile.identity.version_command
        if not command:
            return None
        return self._link().run(command, self.timeouts.command).output.strip()

    def _authorize_key(self, console: Console | None) -> None:
        """Append hil's per-run key to the SSH user's authorized_keys from the console shell."""
        if console is None:
            raise SshError(self.profile.way_in() or f"no console login on {self.name} to add hil's key with")
        user = self.profile.ssh.user
        out = console.run(authorize_key_command(user, self.public_key), self.timeouts.command)
        if not out.ok:
            raise SshError(
                f"could not add hil's SSH key for {user!r} on {self.name}: "
                f"{out.output.strip().splitlines()[-1:] or ['no output']}"
            )

    def diagnosis(self, console: Console | None) -> str:
        """Why SSH failed, as the console sees it: the SSH server is not running (or not installed)."""
        if console is None:
            return ""
        server = self.profile.ssh.server
        check = self.profile.services.check.render(name=server)
        try:
            out = console.run(check, self.timeouts.command)
        except HilError:
            return ""
        if out.ok:
            return f"; the console shows the SSH server {server!r} running"
        return f"; no SSH server: {server!r} is not running on the DUT (`{check}` exited {out.exit_code})"

    def _await_boot_finished(self, link: SshLink) -> None:
        """Run the profile's ready command (e.g. systemctl is-system-running --wait) within the bound."""
        command = self.profile.boot.ready_command
        if not command:
            return
        bound = self.profile.bounds.boot_to_ssh
        try:
            out = link.run(command, bound)
        except SshError as exc:
            raise BootTimeout(f"boot of {self.name} did not finish within {bound:.0f} s: {exc}") from None
        log.info("%s: boot finished (`%s`: %s)", self.name, command, out.output.strip() or out.exit_code)

    def _link(self) -> SshLink:
        if self.link is None:
            raise SshError(f"no SSH session with {self.name} is open")
        return self.link

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        """Run a command over the open session."""
        return self._link().run(command, timeout or self.timeouts.command)

    def put(self, local: Path, remote: str) -> None:
        """Copy a file to the DUT."""
        self._link().put(local, remote)

    def get(self, remote: str, local: Path) -> None:
        """Copy a file from the DUT."""
        self._link().get(remote, local)

    def start(self, command: str) -> None:
        """Start `command` in the background and leave it (a reboot: the session goes down with the OS,
        so whether the command's exit status arrives is a race)."""
        link = self._link()
        with contextlib.suppress(SshError):
            link.run(f"({command}) >/dev/null 2>&1 &", timeout=10)

    def close(self) -> None:
        """Close the session, if one is open."""
        if self.link is not None:
            self.link.close()
            self.link = None
