"""The console transcript's format: every line the DUT printed, stamped with when it began to arrive.

    "    12.345 | " then the DUT's raw bytes, up to and including its newline
    "     0.000 # " then a note from hil (the console attached, a serial adapter dropped out)
    "     3.210 & " the same, where the note broke a line the DUT had not finished

The stamp is seconds since power-on (the console's attach), so `grep`, `sort -n` or `awk '$1 > 30'` and
anyone reading an Allure attachment see where a boot's time went. The bytes after the marker are exactly
what the DUT sent: `raw_bytes()` gives them back. Text without stamps (a transcript from before, or a
slice that starts mid-line) reads as DUT bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from hil.console.text import TextCleaner

DUT, NOTE, BREAK = b"|", b"#", b"&"
_STAMP = re.compile(rb" *(\d+\.\d{3}) ([|#&]) ")
_LINE = re.compile(rb"[^\n]*\n|[^\n]+")


def _stamp(seconds: float, kind: bytes) -> bytes:
    return b"%10.3f %s " % (max(seconds, 0.0), kind)


class TranscriptWriter:
    """Appends what the DUT printed to a transcript, one stamp per line; used by one thread at a time."""

    def __init__(self, path: Path, started: float) -> None:
        self._started = started
        self._file: BinaryIO = path.open("ab")
        # Appended to an earlier boot's transcript that ended mid-line: the first note must break it.
        self._line_start = self._file.tell() == 0 or _last_byte(path) == b"\n"

    def write(self, data: bytes, at: float) -> None:
        """Record `data`, which arrived at `at` (time.monotonic())."""
        for piece in _lines(data):
            if self._line_start:
                self._file.write(_stamp(at - self._started, DUT))
            self._file.write(piece)
            self._line_start = piece.endswith(b"\n")
        self._file.flush()

    def note(self, text: str, at: float) -> None:
        """Record hil's `text` on a line of its own, between what the DUT printed."""
        line = " ".join(text.split()).encode()
        kind = NOTE if self._line_start else BREAK
        self._file.write(
            (b"" if self._line_start else b"\n") + _stamp(at - self._started, kind) + line + b"\n"
        )
        self._file.flush()
        self._line_start = True

    def close(self) -> None:
        self._file.close()


def _lines(data: bytes) -> list[bytes]:
    """`data` cut after each newline (a lone CR is part of the line: it redraws, it does not end it)."""
    return _LINE.findall(data)


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-1, 2)
        return f.read(1)


def records(data: bytes) -> Iterator[tuple[float | None, bytes, bytes]]:
    """(seconds since power-on or None, kind, payload) for each line of transcript bytes."""
    for line in _lines(data):
        match = _STAMP.match(line)
        if match is None:
            yield None, DUT, line
        else:
            yield float(match.group(1)), match.group(2), line[match.end() :]


def raw_bytes(data: bytes) -> bytes:
    """What the DUT sent, without stamps and notes."""
    out = bytearray()
    for _, kind, payload in records(data):
        if kind == DUT:
            out += payload
        elif kind == BREAK and out.endswith(b"\n"):  # the newline before the note was hil's
            del out[-1]
    return bytes(out)


def clean_text(data: bytes) -> str:
    """Transcript bytes as readable text: each line's stamp, then what it showed, escapes stripped."""
    cleaner = TextCleaner()
    parts: list[str] = []
    for seconds, kind, payload in records(data):
        if seconds is None:
            parts.append(cleaner.feed(payload))
        elif kind == DUT:
            parts.append(f"{seconds:10.3f} | " + cleaner.feed(payload))
        else:
            parts.append(f"{seconds:10.3f} # " + payload.decode(errors="replace"))
    return "".join(parts) + cleaner.flush()


def read_clean(path: Path, start: int = 0) -> str:
    """The transcript from byte `start` on, as clean_text(); "" when there is none."""
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(start)
        return clean_text(f.read())
