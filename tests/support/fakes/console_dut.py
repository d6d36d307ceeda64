"""A fake DUT behind a Unix socket, as QEMU's serial chardev would be: a getty, then a real shell on a pty.

It behaves like a noisy serial console: kernel log lines land at random points (inside prompts, between a
prompt and our typing, inside command output), the bytes go out in random pieces, lines end in CRLF,
and the shell side asks for the cursor position (`ESC[6n`) after its prompts, as busybox ash does.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import subprocess
import threading
from pathlib import Path

SHELLS = {
    "bash": ["bash", "--norc", "--noprofile", "-i"],  # bracketed paste on, readline echo
    "dash": ["dash", "-i"],  # no line editing: plain tty echo
    "ash": ["busybox", "ash", "-i"],  # what embedded images run: asks for the cursor position itself
}
_KERNEL_MESSAGES = [
    "virtio_net virtio1 eth0: link up",
    "EXT4-fs (vda2): mounted filesystem with ordered data mode",
    "random: crng init done",
    "usb 1-1: new high-speed USB device number 2 using xhci_hcd",
]


class FakeDut:
    """Serves one console connection on `path`; everything it sends is also kept in `sent`."""

    def __init__(
        self,
        path: Path,
        *,
        seed: int = 0,
        noise: float = 0.0,
        shell: str = "bash",
        logged_in: bool = False,
        prompt_already_printed: bool = False,
        lose_first_username: bool = False,
        username: str = "root",
        password: str = "secret",
    ) -> None:
        self.path = path
        self.sent = bytearray()
        self._rng = random.Random(seed)
        self._noise = noise
        self._shell = SHELLS[shell]
        self._logged_in = logged_in
        self._prompt_already_printed = prompt_already_printed
        self._lose_first_username = lose_first_username
        self._credentials = (username, password)
        self._clock = 3.0
        self._inbox = b""
        self._conn: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Hang up, as a board that lost power would."""
        if self._proc:
            self._proc.kill()
            self._proc.wait()
        for sock in (self._conn, self._server):
            if sock:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked on it
                sock.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        try:
            self._conn, _ = self._server.accept()
            self._emit(b"".join(self._kernel_line() for _ in range(self._rng.randint(1, 5))), noisy=False)
            if not self._logged_in:
                self._getty()
            self._shell_session()
        except (OSError, ValueError):
            pass  # stop() hung up on us (ValueError: select() on the closed socket)
        finally:
            if self._conn:
                self._conn.close()

    def _getty(self) -> None:
        prompt_due = not self._prompt_already_printed
        lose = self._lose_first_username
        while True:
            if prompt_due:
                self._emit(b"\r\nFake Linux 1.0 fakeboard ttyS0\r\n\r\nfakeboard login: ")
            prompt_due = True
            self._emit_noise()
            name = self._readline(echo=not lose)
            if lose:  # the typed name vanished: no echo, no new prompt (labgrid issue 1786)
                lose, prompt_due = False, False
                continue
            if not name:
                continue
            self._emit(b"Password: ")
            password = self._readline(echo=False)
            self._emit(b"\r\n")
            self._emit_noise()
            if (name, password) == self._credentials:
                self._emit(b"Last login: Thu Jan  1 00:00:03 UTC 1970 on ttyS0\r\n")
                return
            self._emit(b"\r\nLogin incorrect\r\n")

    def _shell_session(self) -> None:
        assert self._conn is not None
        main, sub = os.openpty()
        env = {"PATH": os.environ["PATH"], "TERM": "xterm", "HOME": "/tmp", "LC_ALL": "C"}
        # setsid -c gives the shell this pty as its controlling terminal, as getty does.
        self._proc = subprocess.Popen(
            ["setsid", "-c", *self._shell], stdin=sub, stdout=sub, stderr=sub, env=env
        )
        os.close(sub)
        try:
            if self._inbox:
                os.write(main, self._inbox)
            while True:
                ready, _, _ = select.select([self._conn, main], [], [])
                if self._conn in ready:
                    data = self._conn.recv(4096)
                    if not data:
                        return
                    os.write(main, data)
                if main in ready:
                    data = os.read(main, 4096)  # EIO once the shell exits
                    self._emit(data.replace(b"# ", b"# \x1b[6n"))
        finally:
            os.close(main)

    def _readline(self, *, echo: bool) -> str:
        """Read one typed line, echoing it as a tty would."""
        assert self._conn is not None
        while b"\n" not in self._inbox and b"\r" not in self._inbox:
            data = self._conn.recv(4096)
            if not data:
                raise OSError("console client hung up")
            self._inbox += data
        end = min(i for i in (self._inbox.find(b"\n"), self._inbox.find(b"\r")) if i >= 0)
        line, self._inbox = self._inbox[:end], self._inbox[end + 1 :]
        if echo:
            self._emit(line + b"\r\n")
        return line.decode()

    def _emit(self, data: bytes, *, noisy: bool = True) -> None:
        """Send `data` in random pieces, with kernel lines landing between them (never inside one)."""
        assert self._conn is not None
        while data:
            cut = self._rng.randint(1, max(1, len(data)))
            piece, data = data[:cut], data[cut:]
            if noisy and self._rng.random() < self._noise:
                piece += self._kernel_line()
            self.sent += piece
            self._conn.sendall(piece)

    def _emit_noise(self) -> None:
        if self._rng.random() < self._noise:
            self._emit(b"".join(self._kernel_line() for _ in range(self._rng.randint(1, 4))), noisy=False)

    def _kernel_line(self) -> bytes:
        self._clock += self._rng.random()
        return f"[{self._clock:12.6f}] {self._rng.choice(_KERNEL_MESSAGES)}\r\n".encode()
