"""Turning raw console bytes into text a pattern can match: escapes gone, line ends normalised."""

from __future__ import annotations

import codecs
import re

# CSI (colours, cursor moves, `ESC[?2004h` bracketed paste, `ESC[6n` cursor queries), OSC and DCS strings
# (terminal titles) ended by BEL or ST, charset selections (`ESC(B`) and the remaining two-byte escapes.
_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]P^_][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[()*+][0-~]"
    r"|\x1b[0-~]"
)
# A kernel log line as the console prints it (`[   12.345678] eth0: link up`). printk writes straight to
# the UART, so such a line can start in the middle of anything userspace was printing.
KERNEL_LINE = r"\[ *\d+\.\d+\][^\n]*(?:\n|\Z)"
_KERNEL_LINES = re.compile(KERNEL_LINE)
# An escape sequence a kernel line landed in the middle of (`ESC[6` + kernel line + `n`).
_SPLIT_ESCAPE = re.compile(r"(\x1b(?:\[[0-?]*[ -/]*)?)(\[ *\d+\.\d+\][^\n]*\n)")
# The start of an escape sequence that has not finished arriving yet, perhaps with a kernel line in it.
_PARTIAL_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*|[\]P^_][^\x07\x1b]*\x1b?|[()*+])?(?:\[ *[\d.]*(?:\][^\n]*)?)?\Z"
)
# Longer than this, it is garbage rather than a sequence still arriving.
_MAX_PARTIAL = 1024
# Control bytes other than tab, LF and CR (which _line_ends handles); includes a lone ESC.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CR_BEFORE_LF = re.compile(r"\r+\n")
_CR_AFTER_LF = re.compile(r"\n\r+")


class TextCleaner:
    """Incrementally turns console bytes into clean text; holds back sequences split across reads."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._last = "\n"

    def feed(self, data: bytes) -> str:
        """Return the clean text that `data` completes (possibly "")."""
        text = self._pending + self._decoder.decode(data)
        while (unsplit := _SPLIT_ESCAPE.sub(r"\2\1", text)) != text:  # move kernel lines out of escapes
            text = unsplit
        cut = len(text)
        partial = _PARTIAL_ESCAPE.search(text)
        if partial and len(text) - partial.start() < _MAX_PARTIAL:
            cut = partial.start()
        done = _strip(text[:cut])
        ready = len(done.rstrip("\r"))  # a trailing CR may be the first half of a CRLF
        self._pending = done[ready:] + text[cut:]
        return self._line_ends(done[:ready])

    def flush(self) -> str:
        """Return what was held back, cleaned: the stream has ended."""
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return self._line_ends(_strip(text))

    def _line_ends(self, text: str) -> str:
        """CRLF, CRCRLF and LFCR become LF; a lone CR (a line redrawn) becomes LF too, keeping both."""
        if not text:
            return ""
        text = _CR_BEFORE_LF.sub("\n", text)
        text = _CR_AFTER_LF.sub("\n", self._last + text)[1:].replace("\r", "\n")
        if text:
            self._last = text[-1]
        return text


def _strip(text: str) -> str:
    """Remove escape sequences and control bytes except tab, LF and CR."""
    return _CONTROL.sub("", _ESCAPE.sub("", text))


def strip_kernel_lines(text: str) -> str:
    """Return `text` without kernel log lines, wherever they landed."""
    return _KERNEL_LINES.sub("", text)


def tolerant(literal: str) -> str:
    """Return a regex matching `literal` even when kernel log lines landed between its characters."""
    gap = f"(?:{KERNEL_LINE})*"
    return gap.join(re.escape(char) for char in literal)
