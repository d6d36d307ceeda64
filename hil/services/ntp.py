"""The rig's NTP server: Debian's chronyd serving the host's time on 127.0.0.1:<port>.

chronyd runs with `-x`, so it never adjusts the host clock; `local stratum 8` makes it serve the host's
time even when the host itself is not synchronised (a lab machine without internet).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from hil.errors import HilError
from hil.util.hostproc import free_port, tool
from hil.util.serverproc import ServerProcess

NTP_EPOCH = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)


@dataclass(frozen=True)
class NtpAnswer:
    """One NTP server reply, as a client sees it."""

    stratum: int
    offset: float  # server clock minus local clock, seconds
    delay: float  # round trip, seconds


def _ntp_time(raw: int) -> float:
    return raw / 2**32 - NTP_EPOCH


def ntp_query(host: str, port: int, timeout: float = 1.0) -> NtpAnswer:
    """Ask an NTP server for the time once (SNTP, RFC 4330); HilError if it does not answer."""
    request = bytearray(48)
    request[0] = (4 << 3) | 3  # version 4, mode 3 (client)
    sent = time.time()
    struct.pack_into("!Q", request, 40, int((sent + NTP_EPOCH) * 2**32))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(request, (host, port))
            reply, _ = s.recvfrom(512)
        except OSError as exc:
            raise HilError(f"NTP server {host}:{port} did not answer: {exc}") from None
    received = time.time()
    if len(reply) < 48 or reply[0] & 7 != 4:
        raise HilError(f"NTP server {host}:{port} sent something that is not a server reply")
    t2, t3 = (_ntp_time(v) for v in struct.unpack_from("!QQ", reply, 32))
    return NtpAnswer(
        stratum=reply[1], offset=((t2 - sent) + (t3 - received)) / 2, delay=(received - sent) - (t3 - t2)
    )


class NtpServer:
    """chronyd as an NTP server on 127.0.0.1:`port`, in a private directory; `pause()` takes it offline."""

    def __init__(self, workdir: Path | None = None, stratum: int = 8) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="hil-ntp-")) if workdir is None else workdir
        self.stratum = stratum
        self.port = free_port(socket.SOCK_DGRAM)
        self.host = "127.0.0.1"
        self._process: ServerProcess | None = None

    def _config(self) -> Path:
        conf = self.workdir / "chrony.conf"
        conf.write_text(
            f"port {self.port}\nbindaddress {self.host}\nlocal stratum {self.stratum}\nallow\ncmdport 0\n"
            f"pidfile {self.workdir / 'chronyd.pid'}\ndriftfile {self.workdir / 'drift'}\n"
        )
        return conf

    def start(self) -> NtpServer:
        """Start chronyd and wait until it answers an NTP request."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        # chronyd refuses to run unprivileged unless told (-U); as root it keeps root rather than
        # switching to _chrony, which could not read this private directory.
        user = ["-u", "root"] if os.geteuid() == 0 else ["-U"]
        command = [tool("chronyd", "chrony"), "-x", "-d", *user, "-f", str(self._config())]
        self._process = ServerProcess(f"NTP server (chronyd) on port {self.port}", command,
                                      self.workdir / "chronyd.log")  # fmt: skip
        self._process.start(self._answers)
        return self

    def _answers(self) -> bool:
        with contextlib.suppress(HilError):
            ntp_query(self.host, self.port, timeout=0.2)
            return True
        return False

    def query(self, timeout: float = 1.0) -> NtpAnswer:
        """Ask the server for the time, as a client on the host would."""
        return ntp_query(self.host, self.port, timeout)

    @contextlib.contextmanager
    def offline(self) -> Iterator[None]:
        """The server is gone inside the block (its port closed) and back, on the same port, after it.

        Stopped rather than paused: a paused chronyd would answer the requests queued meanwhile on resume,
        late, and a client would take those stale answers as measurements.
        """
        assert self._process is not None
        self._process.stop()
        try:
            yield
        finally:
            self._process.start(self._answers)

    def stop(self) -> None:
        """Stop chronyd and remove its directory when it was a temporary one."""
        if self._process is not None:
            self._process.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> NtpServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | None) -> None:
        self.stop()
