"""A UART console through pyserial that survives its USB adapter vanishing and coming back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import serial

from hil.errors import ConsoleClosed

log = logging.getLogger("hil.serial")

_RETRY = 0.1


class SerialTransport:
    """The Transport of a serial console (/dev/serial/by-id/..., a tty path or any pyserial URL).

    When the port fails (the USB adapter was unplugged, re-enumerated, or the twin's pty was replaced),
    it is reopened by path until `reconnect_timeout` seconds have passed; `on_gap(seconds)` is then told
    how long the console was deaf, so the transcript can mark the hole. Past the deadline: ConsoleClosed.
    """

    def __init__(
        self,
        url_or_path: str,
        baudrate: int = 115200,
        reconnect_timeout: float = 30.0,
        on_gap: Callable[[float], None] | None = None,
    ) -> None:
        self.url = str(url_or_path)
        self.baudrate = baudrate
        self.reconnect_timeout = reconnect_timeout
        self.on_gap = on_gap
        self._lost_at: float | None = None
        self._closed = False
        try:
            self._port: serial.Serial | None = self._open()
        except (serial.SerialException, OSError) as exc:
            raise ConsoleClosed(f"serial console {self.url} cannot be opened: {exc}") from exc
        log.info("serial console %s open at %d baud", self.url, baudrate)

    def __str__(self) -> str:
        return f"SerialTransport({self.url})"

    def read(self, timeout: float) -> bytes:
        """The bytes that arrive within `timeout` seconds (b"" when none, or while reconnecting)."""
        until = time.monotonic() + timeout
        port = self._port or self._reconnect(until)
        if port is None:
            return b""
        try:
            port.timeout = max(until - time.monotonic(), 0)
            data = port.read(1)
            if data and port.in_waiting:
                data += port.read(port.in_waiting)
            return data
        except (serial.SerialException, OSError) as exc:
            self._lose(exc)
            return b""

    def write(self, data: bytes) -> None:
        """Send bytes; across a drop, wait for the port to return (up to the reconnect deadline)."""
        for _attempt in range(2):
            port = self._port or self._reconnect(until=None)
            assert port is not None  # _reconnect(until=None) returns a port or raises
            try:
                port.write(data)
                return
            except (serial.SerialException, OSError) as exc:
                self._lose(exc)
        raise ConsoleClosed(f"serial console {self.url}: writing failed twice across a reconnect")

    def close(self) -> None:
        """Close the port; later reads and writes raise ConsoleClosed."""
        self._closed = True
        if self._port is not None:
            self._port.close()
            self._port = None
            log.info("serial console %s closed", self.url)

    def _open(self) -> serial.Serial:
        return serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0)

    def _lose(self, exc: Exception) -> None:
        log.warning(
            "serial console %s lost (%s); reconnecting for up to %g s", self.url, exc, self.reconnect_timeout
        )
        if self._port is not None:
            self._port.close()
        self._port = None
        self._lost_at = time.monotonic()

    def _reconnect(self, until: float | None) -> serial.Serial | None:
        """Reopen the port, trying until `until` (None: the reconnect deadline); None while not back."""
        if self._closed:
            raise ConsoleClosed(f"serial console {self.url} was closed")
        lost_at = self._lost_at if self._lost_at is not None else time.monotonic()
        deadline = lost_at + self.reconnect_timeout
        while True:
            try:
                self._port = self._open()
                break
            except (serial.SerialException, OSError) as exc:
                now = time.monotonic()
                if now >= deadline:
                    raise ConsoleClosed(
                        f"serial console {self.url} gone for {now - lost_at:.1f} s "
                        f"(reconnect timeout {self.reconnect_timeout:g} s): {exc}"
                    ) from exc
                if until is not None and now >= until:
                    return None
                time.sleep(min(_RETRY, deadline - now, (until or deadline) - now))
        gap = time.monotonic() - lost_at
        self._lost_at = None
        log.warning("serial console %s back after %.1f s", self.url, gap)
        if self.on_gap is not None:
            self.on_gap(gap)
        return self._port
