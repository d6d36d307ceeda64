"""The rig's DNS server: Debian's dnsmasq on 127.0.0.1:<port>, answering only for the names it is given.

Every name under `DOMAIN` that it was not given gets NXDOMAIN at once (the domain is local, nothing is
forwarded), so a DUT that asks the rig for an unknown name fails cleanly instead of timing out.
"""

from __future__ import annotations

import contextlib
import getpass
import secrets
import shutil
import signal
import socket
import struct
import tempfile
import time
from pathlib import Path
from types import TracebackType

from hil.errors import HilError
from hil.util.hostproc import free_port, tool
from hil.util.serverproc import ServerProcess

DOMAIN = "hil.test"  # RFC 6761 keeps .test for testing: it can never be a real name
NXDOMAIN = 3


def dns_query(host: str, port: int, name: str, timeout: float = 1.0) -> list[str]:
    """The IPv4 addresses a DNS server gives for `name` ([] for NXDOMAIN); HilError if it does not answer."""
    ident = secrets.randbelow(1 << 16)
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, (host, port))
            reply, _ = s.recvfrom(4096)
        except OSError as exc:
            raise HilError(f"DNS server {host}:{port} did not answer for {name}: {exc}") from None
    rid, flags, _qd, answers, _ns, _ar = struct.unpack_from("!HHHHHH", reply)
    rcode = flags & 0xF
    if rid != ident or rcode not in (0, NXDOMAIN):
        raise HilError(f"DNS server {host}:{port} answered {name} with rcode {rcode}")
    pos = 12 + len(question) + 4
    addresses = []
    for _ in range(answers):
        pos = _skip_name(reply, pos)
        rtype, _cls, _ttl, length = struct.unpack_from("!HHIH", reply, pos)
        pos += 10
        if rtype == 1 and length == 4:
            addresses.append(socket.inet_ntoa(reply[pos : pos + 4]))
        pos += length
    return addresses


def _skip_name(packet: bytes, pos: int) -> int:
    while packet[pos]:
        if packet[pos] & 0xC0 == 0xC0:  # a compression pointer ends the name
            return pos + 2
        pos += packet[pos] + 1
    return pos + 1


class DnsServer:
    """dnsmasq on 127.0.0.1:`port` with the records added by `add()`; other names under DOMAIN: NXDOMAIN."""

    def __init__(self, workdir: Path | None = None) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="hil-dns-")) if workdir is None else workdir
        self.port = free_port(socket.SOCK_DGRAM)
        self.host = "127.0.0.1"
        self.records: dict[str, str] = {}
        self._hosts = self.workdir / "hosts"
        self._process: ServerProcess | None = None

    def start(self) -> DnsServer:
        """Start dnsmasq and wait until it answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._hosts.write_text("")
        command = [
            tool("dnsmasq", "dnsmasq-base"), "--keep-in-foreground", "--conf-file=/dev/null",
            f"--port={self.port}", f"--listen-address={self.host}", "--bind-interfaces",
            "--no-resolv", "--no-hosts", f"--addn-hosts={self._hosts}", f"--local=/{DOMAIN}/",
            "--no-negcache", "--pid-file", f"--user={getpass.getuser()}", "--log-queries",
            f"--log-facility={self.workdir / 'dnsmasq.log'}",
        ]  # fmt: skip
        self._process = ServerProcess(f"DNS server (dnsmasq) on port {self.port}", command,
                                      self.workdir / "dnsmasq.out")  # fmt: skip
        self._process.start(lambda: self._answers(f"ready.{DOMAIN}", []))
        return self

    def _answers(self, name: str, expected: list[str]) -> bool:
        with contextlib.suppress(HilError):
            return dns_query(self.host, self.port, name, timeout=0.2) == expected
        return False

    def unique_name(self, prefix: str = "dut") -> str:
        """A name nobody has asked for before (so no cache can answer it): `prefix-RANDOM.hil.test`."""
        return f"{prefix}-{secrets.token_hex(4)}.{DOMAIN}"

    def add(self, name: str, address: str, timeout: float = 5.0) -> None:
        """Serve `name` -> `address` (IPv4); returns once the server answers with it."""
        if not name.endswith(f".{DOMAIN}"):
            raise HilError(f"the rig's DNS serves names under {DOMAIN} only, not {name!r}")
        self.records[name] = address
        tmp = self._hosts.with_suffix(".tmp")
        tmp.write_text("".join(f"{ip} {host}\n" for host, ip in self.records.items()))
        tmp.replace(self._hosts)
        assert self._process is not None
        self._process.signal(signal.SIGHUP)  # dnsmasq re-reads its hosts files
        deadline = time.monotonic() + timeout
        while not self._answers(name, [address]):
            if time.monotonic() > deadline:
                raise HilError(f"dnsmasq did not start serving {name} within {timeout:.0f} s")
            time.sleep(0.05)

    def query(self, name: str, timeout: float = 1.0) -> list[str]:
        """What the server answers for `name`, asked from the host."""
        return dns_query(self.host, self.port, name, timeout)

    def stop(self) -> None:
        """Stop dnsmasq and remove its directory when it was a temporary one."""
        if self._process is not None:
            self._process.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | None) -> None:
        self.stop()
