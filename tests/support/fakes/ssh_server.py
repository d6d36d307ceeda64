"""An SSH server on 127.0.0.1 built on paramiko's ServerInterface, with a throwaway host key.

It accepts the public keys it is given, for one user, and answers exec requests from a small table of its
own: it runs nothing on this host (the tests run as root, and a DUT's commands set clocks). `cat > FILE`
and `cat FILE` keep files in memory, so copies work; `sleep N` waits, so a link can drop under a command;
anything else gets what `answer` says, else what a shell says to `echo`, `true`, `false` and `exit N`,
else "not found". Every command is kept in `commands`.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterable

import paramiko

from hil.console.ssh import generate_key

Answer = Callable[[str], tuple[str, int] | None]  # command -> (output, exit status), None: not known


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # unbalanced quotes: no command of the table, whatever it is
        return command.split()


def shell_basics(command: str) -> tuple[str, int] | None:
    """`echo`, `true`, `false` and `exit N`, as a shell answers them."""
    words = _words(command)
    if words[:1] == ["echo"]:
        return " ".join(words[1:]) + "\n", 0
    if words in (["true"], ["false"]):
        return "", int(words == ["false"])
    if len(words) == 2 and words[0] == "exit" and words[1].isdigit():
        return "", int(words[1])
    return None


class FakeSshServer:
    """Serves SSH on `port` until `stop()`; `drop()` cuts every connection, as a DUT that lost power."""

    def __init__(
        self,
        authorized: Iterable[str],
        *,
        host_key: paramiko.PKey | None = None,
        user: str = "root",
        answer: Answer | None = None,
    ) -> None:
        self.host_key = host_key or generate_key()[0]
        self.authorized = {line.split()[1] for line in authorized}  # "ssh-ed25519 BASE64 comment"
        self.user = user
        self.answer = answer
        self.commands: list[str] = []
        self.files: dict[str, bytes] = {}
        self._transports: list[paramiko.Transport] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name=f"fake-sshd-{self.port}").start()

    def drop(self) -> None:
        """Cut every open connection (the listener stays: a client may connect again)."""
        for transport in list(self._transports):
            transport.close()

    def stop(self) -> None:
        """Stop listening and cut every connection."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._listener.close()
        self.drop()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # stop()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        transport = paramiko.Transport(conn)
        transport.add_server_key(self.host_key)
        self._transports.append(transport)
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            transport.start_server(server=_Interface(self))

    def execute(self, channel: paramiko.Channel, command: str) -> None:
        """Answer one exec request on its channel, then close it (called on a thread of its own)."""
        self.commands.append(command)
        try:
            output, status = self._answer(channel, command)
            channel.sendall(output)
            channel.send_exit_status(status)
            channel.shutdown_write()
            # paramiko sends the exec request's reply after this thread starts: closing before the client
            # has it would fail the client's exec_command, so the client closes first (or a second passes).
            deadline = time.monotonic() + 1
            while not channel.closed and time.monotonic() < deadline:
                time.sleep(0.01)
        except (OSError, EOFError, paramiko.SSHException):
            pass  # the link went down under the command
        finally:
            channel.close()

    def _answer(self, channel: paramiko.Channel, command: str) -> tuple[bytes, int]:
        words = _words(command)
        if len(words) == 3 and words[:2] == ["cat", ">"]:
            data = b""
            while chunk := channel.recv(65536):
                data += chunk
            self.files[words[2]] = data
            return b"", 0
        if len(words) == 2 and words[0] == "cat":
            if words[1] in self.files:
                return self.files[words[1]], 0
            return f"cat: {words[1]}: No such file or directory\n".encode(), 1
        if len(words) == 2 and words[0] == "sleep":
            time.sleep(float(words[1]))
            return b"", 0
        answered = (self.answer and self.answer(command)) or shell_basics(command)
        if answered is None:
            return f"sh: {words[0] if words else ''}: not found\n".encode(), 127
        return answered[0].encode(), answered[1]


class _Interface(paramiko.ServerInterface):
    """What the server allows: public-key logins of its one user, sessions, exec requests."""

    def __init__(self, server: FakeSshServer) -> None:
        self.server = server

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == self.server.user and key.get_base64() in self.server.authorized:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        args = (channel, command.decode(errors="replace"))
        threading.Thread(target=self.server.execute, args=args, daemon=True).start()
        return True
