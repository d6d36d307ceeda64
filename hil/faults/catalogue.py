"""Fault catalogues: `faults/<profile>.yaml` beside the OS profiles, for the profile and each it extends.

A catalogue is found in every directory OS profiles are looked up in ($HIL_OS_DIR, ./os, hil's own), so a
team adds faults for its OS in `os/faults/myos.yaml` beside `os/myos.yaml`, and an OS that extends
`generic` gets generic's faults too. A name defined twice means the first found: the profile's own
catalogue before those of the profiles it extends, a user's directory before hil's; a name set to null
takes an inherited fault away (`root-read-only: null`: this OS has no such thing to break).
"""

from __future__ import annotations

from pathlib import Path

from hil.errors import FaultError
from hil.faults.model import Fault, FaultName, NamedFault
from hil.os.loader import search_dirs
from hil.os.model import OsProfile
from hil.os.vocabulary import FEATURES
from hil.util import yamlconf


def catalogue_files(profile: OsProfile) -> list[Path]:
    """The catalogue files for `profile`, first found first."""
    found: list[Path] = []
    for name in profile.lineage or (profile.name,):
        found += [
            d / "faults" / f"{name}.yaml" for d in search_dirs() if (d / "faults" / f"{name}.yaml").is_file()
        ]
    return found


def load_file(path: Path) -> dict[str, NamedFault | None]:
    """The faults one file defines, by name; None for a name it sets to null (this OS has no such fault,
    whatever a profile it extends says). An error names the file, line and field."""
    data, lines = yamlconf.read_yaml(path, FaultError)
    if data is None:
        return {}
    faults = yamlconf.validate(dict[FaultName, Fault | None], data, lines, path, FaultError)
    return {
        name: NamedFault(name=name, source=str(path), fault=fault) if fault is not None else None
        for name, fault in faults.items()
    }


def load_catalogue(profile: OsProfile) -> list[NamedFault]:
    """Every fault for `profile`, each name once, the first definition found winning."""
    chosen: dict[str, NamedFault | None] = {}
    for path in catalogue_files(profile):
        for name, named in load_file(path).items():
            chosen.setdefault(name, named)
    return [named for named in chosen.values() if named is not None]


def not_applicable(fault: Fault, profile: OsProfile) -> str | None:
    """Why `fault` does not apply to an OS with `profile` (a feature it lacks), or None when it does."""
    lacking = sorted(f for f in fault.needs if not profile.has(f))
    if (fault.bundles or fault.bundle_edits) and not profile.has("ab-update"):
        lacking.insert(0, "ab-update")
    if lacking:
        return f"OS profile {profile.name!r} does not " + "; nor ".join(FEATURES[f] for f in lacking)
    if fault.bundle_edits and profile.update is not None and profile.update.repack is None:
        return f"OS profile {profile.name!r} does not say how its bundles are rebuilt (update.repack)"
    return None


def select(catalogue: list[NamedFault], names: list[str] | None) -> list[NamedFault]:
    """The faults `names` chose (all when None); an unknown name is an error listing the known ones."""
    if not names:
        return catalogue
    by_name = {f.name: f for f in catalogue}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise FaultError(f"unknown fault {', '.join(unknown)}; this OS profile's catalogue has: {known}")
    return [by_name[n] for n in dict.fromkeys(names)]
