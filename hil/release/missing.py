"""Why CI has no results for some device types (`hil release gate --missing-from FILE`): one line
`TYPE: missing: WHY` per device type, as jenkins/Jenkinsfile writes them. The file is read bounded and
strictly, since a guess could hide a cell; each reason is untrusted text (an exception's message), made
inert and bounded before any report shows it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from pathlib import Path

from hil.errors import RigConfigError
from hil.results.model import Unreadable, read_bounded

# One line per device type a build gates: a few dozen at most. Anything larger is not this file.
MAX_BYTES = 64 << 10
MAX_LINES = 256
# A reason longer than this (once made inert) is cut, saying how much was cut.
MAX_REASON = 500
_LINE = re.compile(r"(?P<type>[^\s:]+): missing: (?P<why>.*\S.*)")
# Control and format characters (ANSI escapes, bidi overrides) and line or paragraph separators.
_HIDDEN = {"Cc", "Cf", "Zl", "Zp"}


def read_missing(path: Path, device_types: Collection[str]) -> dict[str, str]:
    """Device type -> why its cell produced no results, from `path`. RigConfigError naming the file (and
    line) for a file too large or unreadable, a line that is not `TYPE: missing: WHY`, a device type not
    among `device_types`, or one named twice."""
    try:
        data = read_bounded(path, MAX_BYTES)
    except Unreadable as exc:
        raise RigConfigError(f"--missing-from {path}: {exc}") from None
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_LINES:
        raise RigConfigError(f"--missing-from {path}: {len(lines)} lines, more than the {MAX_LINES} allowed "
                             "(one per device type)")  # fmt: skip
    missing: dict[str, str] = {}
    first: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        where = f"--missing-from {path}:{number}"
        match = _LINE.fullmatch(line)
        if match is None:
            raise RigConfigError(f"{where}: not a 'TYPE: missing: WHY' line: '{inert(line, 80)}'")
        device_type = match["type"]
        if device_type not in device_types:
            raise RigConfigError(f"{where}: device type '{inert(device_type, 80)}' is not one the release is "
                                 f"gated on ({', '.join(device_types) or 'none'})")  # fmt: skip
        if device_type in first:
            raise RigConfigError(f"{where}: device type {device_type} is named again (first on line "
                                 f"{first[device_type]})")  # fmt: skip
        first[device_type] = number
        missing[device_type] = inert(match["why"].strip())
    return missing


def inert(text: str, limit: int = MAX_REASON) -> str:
    """`text` as one line that shows as written and does nothing: hidden characters written as Python
    escapes (`\\x1b`, `\\u202e`), cut at `limit` characters saying how many more there were."""
    shown = "".join(
        ch.encode("unicode_escape").decode() if unicodedata.category(ch) in _HIDDEN else ch for ch in text
    )
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown) - limit} more characters)"
