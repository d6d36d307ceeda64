"""The rig's HTTP(S) server: Python's http.server on 127.0.0.1:<port>, serving one directory.

Every response carries a `Date` header (http.server sends it), which is what an HTTPS time sync reads.
Each completed GET is recorded with its size and the time the server took to send it.
"""

from __future__ import annotations

import functools
import logging
import shutil
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from hil.services.tls import ServerIdentity

log = logging.getLogger("hil.services.http")


@dataclass(frozen=True)
class Transfer:
    """One file the server sent."""

    path: str
    size: int
    seconds: float

    @property
    def bytes_per_second(self) -> float:
        """Throughput of this transfer as the server saw it."""
        return self.size / max(self.seconds, 1e-6)


class _CountingWriter:
    """The response stream, counting what goes through it (so the recorded size is what was sent)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.sent = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self.sent += len(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.counter = _CountingWriter(self.wfile)
        # A stand-in that forwards everything but write() to the real stream, not a BufferedIOBase itself.
        self.wfile = self.counter  # type: ignore[assignment]

    def copyfile(self, source: Any, outputfile: Any) -> None:
        start = time.monotonic()
        before = self.counter.sent
        shutil.copyfileobj(source, outputfile, 1 << 16)
        outputfile.flush()
        self.server.record(Transfer(self.path, self.counter.sent - before, time.monotonic() - start))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        super().__init__(address, handler)
        self.transfers: list[Transfer] = []
        self._lock = threading.Lock()

    def record(self, transfer: Transfer) -> None:
        with self._lock:
            self.transfers.append(transfer)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that rejects our certificate or hangs up is the client's story, not a server fault.
        log.debug("request from %s failed", client_address, exc_info=True)


class HttpServer:
    """Serve `root` over HTTP, or HTTPS with `identity`, on 127.0.0.1:`port` from a background thread."""

    def __init__(self, root: Path | None = None, identity: ServerIdentity | None = None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="hil-http-")) if root is None else root
        self.identity = identity
        self.host = "127.0.0.1"
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        """http or https."""
        return "https" if self.identity else "http"

    @property
    def transfers(self) -> list[Transfer]:
        """The files sent so far, oldest first."""
        return list(self._server.transfers) if self._server else []

    def url(self, path: str = "", host: str | None = None) -> str:
        """The URL of `path` on this server, as a client reaching the host at `host` writes it."""
        return f"{self.scheme}://{host or self.host}:{self.port}/{path.lstrip('/')}"

    def start(self) -> HttpServer:
        """Bind a free port and serve."""
        self.root.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_Handler, directory=str(self.root))
        self._server = _Server((self.host, 0), handler)
        self.port = int(self._server.server_address[1])
        if self.identity is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.TemporaryDirectory() as tmp:
                _ca, cert, key = self.identity.write(Path(tmp))
                context.load_cert_chain(cert, key)
            # The handshake happens in the request's thread, so one slow client cannot stall accept().
            self._server.socket = context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
            name=f"hil-{self.scheme}-{self.port}",
        )  # fmt: skip
        self._thread.start()
        log.info("%s server on %s:%d serving %s", self.scheme, self.host, self.port, self.root)
        return self

    def stop(self) -> None:
        """Stop serving and remove the served directory when it was a temporary one."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException], BaseException, TracebackType] | None) -> None:
        self.stop()
