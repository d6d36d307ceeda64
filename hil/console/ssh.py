"""SSH to the DUT over paramiko: connect with retries, run with timeouts, copy files, pin the host key."""

from __future__ import annotations

import contextlib
import io
import logging
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hil.console.result import CommandResult
from hil.errors import CredentialsError, SshError

log = logging.getLogger("hil.console.ssh")
# paramiko logs every refused banner as an ERROR with a traceback; while a DUT boots those are expected
# retries, and the SshError raised at the deadline names the last one.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)
_CHUNK = 256 * 1024


def generate_key() -> tuple[paramiko.PKey, str]:
    """A fresh Ed25519 key pair: the private key for hil, the public line for the DUT's config.json."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    return key, f"{key.get_name()} {key.get_base64()} hil"


def load_key(path: Path) -> tuple[paramiko.PKey, str]:
    """A user's private key file (the DUT already accepts it), with its public line."""
    try:
        key = paramiko.PKey.from_path(path)
    except FileNotFoundError:
        raise CredentialsError(f"SSH key file {path} does not exist") from None
    except PermissionError:
        raise CredentialsError(f"SSH key file {path} is not readable by this user") from None
    except paramiko.PasswordRequiredException:
        raise CredentialsError(
            f"SSH key file {path} is encrypted; hil needs a key without a passphrase"
        ) from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise CredentialsError(f"SSH key file {path} is not a private key hil can read: {exc}") from None
    return key, f"{key.get_name()} {key.get_base64()} hil"


def authorize_key_command(user: str, public_key: str) -> str:
    """Shell that appends `public_key` to `user`'s authorized_keys once, with the modes sshd insists on.

    Runs in any POSIX shell (busybox included): the home directory comes from /etc/passwd, and where
    SELinux labels files, restorecon gives the new ones the label sshd may read.
    """
    u, k = shlex.quote(user), shlex.quote(public_key)
    return (
        f"h=$(awk -F: -v u={u} '$1 == u {{print $6}}' /etc/passwd) && [ -n \"$h\" ] && "
        'mkdir -p "$h/.ssh" && touch "$h/.ssh/authorized_keys" && '
        f'{{ grep -qxF {k} "$h/.ssh/authorized_keys" || '
        f"printf '%s\\n' {k} >>\"$h/.ssh/authorized_keys\"; }} && "
        f'chmod 700 "$h/.ssh" && chmod 600 "$h/.ssh/authorized_keys" && chown -R {u} "$h/.ssh" && '
        '{ ! command -v restorecon >/dev/null 2>&1 || restorecon -R "$h/.ssh"; }'
    )


class HostKeyPin(paramiko.MissingHostKeyPolicy):
    """Trust the first host key a freshly flashed DUT shows, then refuse any other until `reset()`."""

    def __init__(self) -> None:
        self.key: paramiko.PKey | None = None

    def reset(self) -> None:
        """Forget the pinned key (the DUT was reflashed and generates new host keys)."""
        self.key = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        """Pin on first sight; a different key later means another machine answers."""
        if self.key is None:
            self.key = key
        elif self.key != key:
            raise SshError(
                f"host key of {hostname} changed from {self.key.fingerprint} to {key.fingerprint} "
                "without a reflash: another machine answers on this port"
            )


class SshLink:
    """One SSH session to a DUT."""

    def __init__(self, host: str, port: int, user: str, key: paramiko.PKey, pin: HostKeyPin) -> None:
        self.host, self.port, self.user = host, port, user
        self._key = key
        self._pin = pin
        self._client: paramiko.SSHClient | None = None

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def connect(self, deadline: float) -> None:
        """Connect, retrying until `deadline` (monotonic) while the DUT's SSH server comes up."""
        last: Exception | None = None
        while time.monotonic() < deadline:
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(self._pin)
            try:
                # slirp accepts at once and retries the guest side with growing delays; a short
                # banner timeout plus retries reaches a session sooner than one long wait (FIELD-NOTES).
                client.connect(
                    self.host, self.port, self.user, pkey=self._key, timeout=5, banner_timeout=1.5,
                    auth_timeout=10, allow_agent=False, look_for_keys=False,
                )  # fmt: skip
            except SshError:
                client.close()
                raise
            except (paramiko.SSHException, OSError, EOFError) as exc:
                client.close()
                last = exc
                time.sleep(0.3)
                continue
            transport = client.get_transport()
            assert transport is not None
            transport.set_keepalive(5)
            self._client = client
            log.info("ssh %s connected", self)
            return
        raise SshError(f"no SSH session with {self} before the deadline; last error: {last or 'none'}")

    def _transport(self) -> paramiko.Transport:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise SshError(f"SSH link to {self} is not connected")
        return transport

    @contextlib.contextmanager
    def _channel(self, command: str, timeout: float, what: str) -> Iterator[paramiko.Channel]:
        """An exec channel running `command`; timeouts and a dropped link become one SshError line."""
        log.debug("ssh %s $ %s", self, command)
        try:
            channel = self._transport().open_session(timeout=10)
            channel.settimeout(timeout)
            channel.set_combine_stderr(True)
            channel.exec_command(command)
            yield channel
        except TimeoutError:
            raise SshError(f"{what} did not finish within {timeout:.0f} s on {self}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshError(f"SSH link to {self} dropped during {what}: {exc or type(exc).__name__}") from None

    @staticmethod
    def _status(channel: paramiko.Channel, what: str, link: SshLink) -> int:
        status = channel.recv_exit_status()
        if status == -1:
            raise SshError(f"SSH link to {link} dropped during {what} (no exit status)")
        return status

    def run(self, command: str, timeout: float) -> CommandResult:
        """Run a command; output is stdout and stderr interleaved; a timeout or dropped link is SshError."""
        what = f"`{command}`"
        with self._channel(command, timeout, what) as channel:
            output = channel.makefile("rb").read()
            status = self._status(channel, what, self)
        return CommandResult(command, output.decode(errors="replace"), status)

    def put(self, local: Path, remote: str, timeout: float = 300) -> None:
        """Copy a local file to the DUT (streamed through `cat`, which every SSH server can run)."""
        what = f"copying {local} to {remote}"
        with self._channel(f"cat > {shlex.quote(remote)}", timeout, what) as channel, local.open("rb") as src:
            while chunk := src.read(_CHUNK):
                channel.sendall(chunk)
            channel.shutdown_write()
            output = channel.makefile("rb").read()
            if self._status(channel, what, self) != 0:
                raise SshError(f"{what} on {self} failed: {output.decode(errors='replace').strip()}")

    def get(self, remote: str, local: Path, timeout: float = 300) -> None:
        """Copy a file from the DUT to the host."""
        what = f"copying {remote} to {local}"
        with self._channel(f"cat {shlex.quote(remote)}", timeout, what) as channel:
            data = channel.makefile("rb").read()
            if self._status(channel, what, self) != 0:
                raise SshError(f"{what} from {self} failed: {data.decode(errors='replace').strip()}")
        local.write_bytes(data)

    def close(self) -> None:
        """Close the session; safe to call twice."""
        if self._client is not None:
            self._client.close()
            self._client = None
