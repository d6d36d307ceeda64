"""The byte-stream contract every console transport (QEMU socket, UART, pty) fulfils."""

from __future__ import annotations

from typing import Protocol


class Transport(Protocol):
    """A bidirectional byte stream to a DUT's console."""

    def read(self, timeout: float) -> bytes:
        """Return the bytes available within `timeout` seconds (b"" when none); raise ConsoleClosed at EOF."""
        ...

    def write(self, data: bytes) -> None:
        """Send bytes to the DUT; raise ConsoleClosed when the link is gone."""
        ...

    def close(self) -> None:
        """Release the link; idempotent."""
        ...
