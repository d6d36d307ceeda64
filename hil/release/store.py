"""What every release store offers the gate: look a release up, finalize it once, keep the evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

DRAFT, FINAL, INVALIDATED = "draft", "final", "invalidated"

# What a gate run did to the store, recorded with the evidence.
FINALIZED, ALREADY_FINAL, NOT_FINALIZED, DRY_RUN = "finalized", "already final", "not finalized", "dry run"


@dataclass(frozen=True)
class Release:
    """A release as a store knows it."""

    id: str
    version: str
    device_types: tuple[str, ...]
    status: str
    created: str = ""
    finalized_at: str | None = None


class ReleaseStore(Protocol):
    """A place releases live: the embedded sqlite file, or balena's API."""

    def get(self, release_id: str) -> Release:
        """The release; HilError when the store has none with that id."""
        ...

    def finalize(self, release_id: str, evidence: dict) -> str:
        """Mark a draft final and keep `evidence`, atomically: FINALIZED, or ALREADY_FINAL as a no-op."""
        ...

    def record(self, release_id: str, evidence: dict) -> None:
        """Keep the evidence of a decision that did not finalize."""
        ...
