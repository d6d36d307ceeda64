"""OS profiles: what differs between operating systems under test, in one table."""

from __future__ import annotations

from hil.errors import RigConfigError
from hil.os.balenaos import BALENAOS
from hil.os.base import OsProfile
from hil.os.generic import GENERIC
from hil.os.reference import REFERENCE

PROFILES: dict[str, OsProfile] = {p.name: p for p in (REFERENCE, BALENAOS, GENERIC)}


def get_profile(name: str) -> OsProfile:
    """The profile called `name`; an unknown name lists the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise RigConfigError(f"unknown OS profile {name!r}; known: {', '.join(sorted(PROFILES))}") from None
