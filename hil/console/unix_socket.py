"""A console transport on a Unix stream socket: how hil reads QEMU's serial chardev."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hil.errors import ConsoleClosed

# QEMU creates the socket a moment after it starts; retry this often until the deadline.
_RETRY_INTERVAL = 0.05
_READ_SIZE = 65536
_RECONNECT_TIMEOUT = 10.0  # for the restarted server's socket, which exists once it was handed over


class UnixSocketTransport:
    """The client end of a Unix stream socket (QEMU `-chardev socket,path=...,server=on,wait=off`).

    `follow()`, asked when the other end closes, says whether a new server took over the same path (the
    board restarted QEMU): the transport then reconnects and the stream goes on. Bytes written while the
    board restarts are lost, as keystrokes sent to a real board during its reset are.
    """

    def __init__(
        self,
        path: Path,
        connect_timeout: float,
        *,
        closed_reason: Callable[[], str | None] | None = None,
        follow: Callable[[], bool] | None = None,
    ) -> None:
        self.path = Path(path)
        self._closed = False
        self._closed_reason = closed_reason
        self._follow = follow
        self._relinking = threading.Lock()  # the reader and a writer may both see the old socket fail
        self._sock = self._connect(connect_timeout, closed_reason)

    def _connect(self, timeout: float, closed_reason: Callable[[], str | None] | None) -> socket.socket:
        """Connect, retrying while the socket does not exist yet or nobody listens on it.

        `closed_reason` says why the server will never come (QEMU exited), so we stop retrying at once.
        """
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                reason = closed_reason() if closed_reason else None
                if reason:
                    raise ConsoleClosed(f"console socket {self.path} will not come up: {reason}") from exc
                if time.monotonic() >= deadline:
                    raise ConsoleClosed(
                        f"console socket {self.path} did not accept a connection within {timeout:g} s "
                        f"({exc.strerror})"
                    ) from exc
                time.sleep(_RETRY_INTERVAL)
            except OSError as exc:
                sock.close()
                raise ConsoleClosed(f"cannot connect to console socket {self.path}: {exc}") from exc
            else:
                return sock

    def read(self, timeout: float) -> bytes:
        """Return the bytes available within `timeout` seconds (b"" when none); raise ConsoleClosed at EOF."""
        if self._closed:
            raise ConsoleClosed(f"console socket {self.path} was closed by hil")
        sock = self._sock
        try:
            readable, _, _ = select.select([sock], [], [], timeout)
            if not readable:
                return b""
            data = sock.recv(_READ_SIZE)
        except (OSError, ValueError) as exc:  # ValueError: closed under us by another thread
            if self._relinked(sock):
                return b""
            raise ConsoleClosed(f"console socket {self.path} failed: {exc}") from exc
        if not data:
            if self._relinked(sock):
                return b""
            raise ConsoleClosed(f"console socket {self.path} was closed by the other end")
        return data

    def write(self, data: bytes) -> None:
        """Send bytes to the DUT; raise ConsoleClosed when the link is gone."""
        if self._closed:
            raise ConsoleClosed(f"console socket {self.path} was closed by hil")
        sock = self._sock
        try:
            sock.sendall(data)
        except OSError as exc:
            if self._relinked(sock):
                return  # sent across a restart: lost, as on a real line
            raise ConsoleClosed(f"console socket {self.path} failed: {exc}") from exc

    def _relinked(self, failed: socket.socket) -> bool:
        """After `failed` broke: whether the transport is now on a restarted board's socket."""
        if self._follow is None or self._closed:
            return False
        with self._relinking:
            if self._sock is not failed:
                return True  # the other thread reconnected already
            if not self._follow():
                return False
            failed.close()
            self._sock = self._connect(_RECONNECT_TIMEOUT, self._closed_reason)
            return True

    def close(self) -> None:
        """Release the socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):  # the other end may already be gone
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
