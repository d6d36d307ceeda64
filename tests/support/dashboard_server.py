"""The dashboard served over HTTP on loopback for a test, in a thread of the test process."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from hil.web.app import create_app


@contextmanager
def serving(
    store: Path | str, artifact_roots: Sequence[Path] | None = None, stale_after: float | None = None
) -> Iterator[str]:
    """The dashboard of `store` on a free port of 127.0.0.1; its base URL. Run files are served from
    `artifact_roots`, by default the system's temporary folder, where the test labs keep their runs and
    the live-console test its session's artifacts."""
    if artifact_roots is None:
        artifact_roots = [Path(tempfile.gettempdir())]
    extra = {} if stale_after is None else {"stale_after": stale_after}
    app = create_app(store, artifact_roots, **extra)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
