"""A team's update bundles for the hostapp-update suite, one file per role, named in a YAML file.

    # bundles.yaml (--update-bundles bundles.yaml); paths are relative to this file
    version: 2.1.0                          # the OS version the good bundle installs (optional)
    good: myos-2.1.0.raucb
    never-boots: myos-2.1.0-no-init.raucb
    other-key: myos-2.1.0-signed-by-a-stranger.raucb

Roles come from one closed set (`hil.os.vocabulary.BundleRole`): a misspelt role is an error naming the file,
line and key, never a silently skipped test. A role the file does not name skips its test, naming it.
hil's own image builders write such a file beside the images they build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from hil.errors import ImageError
from hil.os.vocabulary import BUNDLE_ROLES, BundleRole
from hil.util import yamlconf


@dataclass(frozen=True)
class Bundles:
    """Bundles by role, and the OS version the good one installs (None: not stated)."""

    roles: dict[BundleRole, Path] = field(default_factory=dict)
    version: str | None = None


def _field(role: str) -> str:
    return role.replace("-", "_")


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str | None = Field(None, description="the OS version the good bundle installs")


# One optional field a role, spelt in the file as the role is (never-boots), so a misspelt key is named.
_ROLE_FIELDS: dict[str, Any] = {
    r.replace("-", "_"): (Path | None, Field(None, alias=r)) for r in BUNDLE_ROLES
}
_BundlesFile = create_model("BundlesFile", __base__=_Base, **_ROLE_FIELDS)


def load_bundles(path: Path) -> Bundles:
    """The bundles a bundles file names; every file it names must exist."""
    data, lines = yamlconf.read_yaml(path, ImageError)
    loaded = yamlconf.validate(_BundlesFile, data, lines, path, ImageError)
    roles = {
        r: path.parent / f for r in BUNDLE_ROLES if (f := getattr(loaded, r.replace("-", "_"))) is not None
    }
    missing = [f"{role}: {file}" for role, file in roles.items() if not file.is_file()]
    if missing:
        raise ImageError(f"{path}: no such bundle file for {', '.join(missing)}")
    return Bundles(roles, loaded.version)


def bundle_beside(image: Path) -> Path | None:
    """The update bundle hil's reference builder puts beside an image (`os.img` -> `os.bundle.tar`): the
    good bundle, when no bundles file names one."""
    path = image.with_name(image.name.removesuffix(".img") + ".bundle.tar")
    return path if path.is_file() else None


def bundles_beside(image: Path) -> Path | None:
    """The bundles file beside an image (`os.img` -> `os.bundles.yaml`), when there is one."""
    path = image.with_name(image.name.split(".img")[0] + ".bundles.yaml")
    return path if path.is_file() else None
