"""What every release store offers the gate: look a release up, finalize it once, keep the evidence."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from hil.errors import HilError

DRAFT, FINAL, INVALIDATED = "draft", "final", "invalidated"

# What a gate run did to the store, recorded with the evidence.
FINALIZED, ALREADY_FINAL, NOT_FINALIZED, DRY_RUN = "finalized", "already final", "not finalized", "dry run"

# Ids are row numbers (sqlite) or balena's integer ids: digits that fit a signed 64-bit integer.
_RELEASE_ID = re.compile(r"[0-9]{1,18}")
# A balena device type slug, or a user's (qemux86-64, raspberrypi4-64, generic-amd64).
_DEVICE_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Whatever the OS reports (1.2.0, 2.115.3+rev1, 12), printable and without spaces at either end.
_VERSION = re.compile(r"[!-~](?:[ -~]{0,126}[!-~])?")


class DecisionInterrupted(HilError):
    """The store's connection dropped while a gate was deciding: the release is as it was (or, when the
    drop came as the decision was committed, the store must be asked), and the gate can run again."""


@dataclass(frozen=True)
class ReleaseImage:
    """The image a release ships for one device type: its content hash, and where it was read."""

    sha256: str
    path: str


@dataclass(frozen=True)
class Release:
    """A release as a store knows it."""

    id: str
    version: str
    device_types: tuple[str, ...]
    status: str
    created: str = ""
    finalized_at: str | None = None
    images: dict[str, ReleaseImage] = field(default_factory=dict)
    finalized_by: str | None = None  # who finalized it (the gate's `who`), when the store knows


def is_final_outcome(outcome: str) -> bool:
    """Whether a store's answer to finalize means the release is final: FINALIZED, or ALREADY_FINAL with
    or without who finalized it."""
    return outcome in (FINALIZED, ALREADY_FINAL) or outcome.startswith(f"{ALREADY_FINAL} ")


def release_id(text: str) -> int:
    """`text` as a release id; a one-line error for anything else (empty, signed, huge, not digits)."""
    if not _RELEASE_ID.fullmatch(text):
        shown = text if len(text) <= 24 else f"{text[:24]}... ({len(text)} characters)"
        raise HilError(f"release id '{shown}' is not a release number (see `hil release list`)")
    return int(text)


def checked_version(version: str) -> str:
    """The OS version a release is for: non-empty, printable, at most 128 characters."""
    if not _VERSION.fullmatch(version):
        raise HilError(
            f"release version {version[:40]!r} is not usable: give the OS version the image reports "
            "(printable, no spaces at either end, at most 128 characters)"
        )
    return version


def checked_device_type(device_type: str) -> str:
    """A device type slug: letters, digits, '.', '_', '-', starting with a letter or digit."""
    if not _DEVICE_TYPE.fullmatch(device_type):
        raise HilError(
            f"device type {device_type[:40]!r} is not a device type slug (e.g. qemux86-64, raspberrypi4-64)"
        )
    return device_type


class ReleaseStore(Protocol):
    """A place releases live: the embedded sqlite file, or balena's API."""

    def get(self, release_id: str) -> Release:
        """The release; HilError when the store has none with that id."""
        ...

    def finalize(self, release_id: str, evidence: dict) -> str:
        """Mark a draft final and keep `evidence`, exactly once: FINALIZED for the one caller that did,
        ALREADY_FINAL for every other (perhaps followed by " by WHO at WHEN": see is_final_outcome)."""
        ...

    def record(self, release_id: str, evidence: dict) -> None:
        """Keep the evidence of a decision that did not finalize."""
        ...
