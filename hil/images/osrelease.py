"""An image's OS version, read where the OS itself keeps it: os-release in a root partition.

balenaOS's device-type.json has a `version` too, but that is the version of the file's format (1), not
of the OS; only os-release says which OS an image carries. Which partition is a root is the OS
profile's to say (`layout.partitions`); this module takes its number.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from hil.errors import ImageError
from hil.images.edit import read_file
from hil.images.read import materialize

OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")  # os-release(5): the first that exists counts


def parse_os_release(text: str) -> dict[str, str]:
    """os-release's KEY=value lines (values shell-quoted or bare); comments and blank lines skipped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#") or not key.isidentifier():
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            continue  # an unterminated quote: the line says nothing reliable
        fields[key] = words[0] if len(words) == 1 else ""
    return fields


def os_version(image: Path, partition: int) -> str | None:
    """VERSION_ID of the OS in partition `partition` of `image` (decompressed first if need be), or None
    when its os-release says none; ImageError when the partition holds no os-release."""
    raw = materialize(image)
    missing = []
    for path in OS_RELEASE:
        try:
            text = read_file(raw, partition, path).decode("utf-8", errors="replace")
        except ImageError as exc:
            missing.append(str(exc))
            continue
        return parse_os_release(text).get("VERSION_ID") or None
    raise ImageError(f"{image}: partition {partition} has no os-release ({missing[-1]})")
