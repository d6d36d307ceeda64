"""A synchronous handle on QEMU's monitor (QMP), driven by qemu.qmp on a private event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qemu.qmp import EventListener, QMPClient, QMPError
from qemu.qmp.message import Message

from hil.errors import QemuError

log = logging.getLogger("hil.qmp")
# qemu.qmp logs each refused connect as an ERROR; while QEMU starts those are expected retries.
logging.getLogger("qemu.qmp.protocol").setLevel(logging.CRITICAL)


EventHandler = Callable[[str, dict[str, Any]], None]


class _Handler(EventListener):
    """Hands each event of the named kinds to a callback as it arrives, queueing none."""

    def __init__(self, names: tuple[str, ...], handler: EventHandler) -> None:
        super().__init__(names)
        self._handler = handler

    def accept(self, event: Message) -> bool:
        if super().accept(event):
            data = event.get("data", {})  # QMP events are JSON objects; qemu.qmp types their values as object
            self._handler(str(event["event"]), dict(data) if isinstance(data, Mapping) else {})
        return False


class QmpLink:
    """One QMP connection; every call blocks until QEMU answers or the timeout passes.

    `events` (names) go to `on_event(name, data)` on the link's own thread: it must not block.
    """

    def __init__(
        self, socket_path: Path, name: str, events: tuple[str, ...] = (), on_event: EventHandler | None = None
    ) -> None:
        self._path = socket_path
        self._client = QMPClient(name)
        if events and on_event is not None:
            self._client.register_listener(_Handler(events, on_event))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"qmp-{name}", daemon=True)
        self._thread.start()

    def _call(self, coro: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise QemuError(f"QMP did not answer within {timeout:.0f} s ({self._path})") from None

    def connect(self, deadline: float, alive: Callable[[], bool]) -> str:
        """Connect (retrying while QEMU creates the socket) and return QEMU's version."""
        while True:
            try:
                self._call(self._client.connect(str(self._path)), timeout=5)
                break
            except (QMPError, OSError) as exc:
                if not alive():
                    raise QemuError("QEMU exited before its monitor answered") from None
                if time.monotonic() > deadline:
                    raise QemuError(f"cannot connect to QMP at {self._path}: {exc}") from None
                time.sleep(0.05)
        version = self._client.greeting.QMP.version["qemu"] if self._client.greeting else {}
        if not isinstance(version, Mapping):  # the greeting is JSON: qemu.qmp types it as object
            return "unknown"
        return "{major}.{minor}.{micro}".format(**version) if version else "unknown"

    def execute(self, command: str, arguments: dict[str, Any] | None = None, timeout: float = 10) -> Any:
        """Run a QMP command and return its result; a QMP error becomes a QemuError."""
        log.debug("qmp %s %s", command, arguments or "")
        try:
            return self._call(self._client.execute(command, arguments), timeout)
        except (QMPError, EOFError, ConnectionError) as exc:
            # QEMU closes the socket as it exits (after `quit`, or when it dies): no reply, only EOF.
            raise QemuError(f"QMP {command} failed: {exc or type(exc).__name__}") from None

    def close(self) -> None:
        """Disconnect and stop the loop; safe to call twice."""
        if self._loop.is_closed():
            return
        # QEMU may already be gone; then there is nothing to disconnect from.
        with contextlib.suppress(QemuError, QMPError, OSError, EOFError):
            self._call(self._client.disconnect(), timeout=2)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(2)
        self._loop.close()
