"""OS profiles: what differs between operating systems under test, as data (see model and loader)."""

from __future__ import annotations

from hil.os.loader import available, load_profile
from hil.os.model import OsProfile
from hil.os.vocabulary import FEATURES

__all__ = ["FEATURES", "OsProfile", "available", "get_profile"]


def get_profile(name: str) -> OsProfile:
    """The profile called `name` (a user's, or one hil ships); an unknown name lists the known ones."""
    return load_profile(name)
