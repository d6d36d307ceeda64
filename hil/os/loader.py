"""OS profiles as data: find a profile's YAML file, follow its `extends:` chain, merge, and validate.

Profiles are looked up by name in $HIL_OS_DIR (a path list), then ./os, then the profiles hil ships
(reference, generic, balenaos). A file `extends:` another profile and states only what differs:
mappings merge key by key, anything else (a list, a string, null) replaces what the parent said.
`extends: NAME` inside a file NAME.yaml means the next NAME further down the search path, so a user's
os/generic.yaml can refine the shipped generic profile. A rig file may hold its profile inline
(`os:` as a mapping) and may add `credentials:`; both are merged the same way. Every validation error
names the file and line that said it, whichever file of the chain that is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hil.errors import RigConfigError
from hil.os.model import OsProfile
from hil.util import yamlconf

BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"
# A chain longer than this is a loop or a mistake; either way it is refused, not followed.
MAX_DEPTH = 8

KeyPath = tuple[Any, ...]
Origins = dict[KeyPath, tuple[Path, int]]


def search_dirs() -> list[Path]:
    """Where profiles are looked up, first match winning: $HIL_OS_DIR, ./os, then hil's own."""
    dirs = [Path(p) for p in os.environ.get("HIL_OS_DIR", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "os", BUILTIN_DIR]
    found: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in found:
            found.append(d.resolve())
    return found


def available() -> dict[str, Path]:
    """Every profile name found, mapped to the file that defines it."""
    found: dict[str, Path] = {}
    for d in search_dirs():
        for path in sorted(d.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def _find(name: str, below: Path | None = None) -> Path:
    """The file defining profile `name`; with `below`, the first one after that file in the search."""
    candidates = [d / f"{name}.yaml" for d in search_dirs() if (d / f"{name}.yaml").is_file()]
    if below is not None and below.resolve() in [c.resolve() for c in candidates]:
        candidates = candidates[[c.resolve() for c in candidates].index(below.resolve()) + 1 :]
    if not candidates:
        known = ", ".join(sorted(available())) or "none"
        raise RigConfigError(f"unknown OS profile {name!r}; known: {known}")
    return candidates[0]


def load_profile(name: str) -> OsProfile:
    """The profile called `name`, with its `extends:` chain merged."""
    path = _find(name)
    data, origins = _chain(path, depth=0)
    return _validate({**data, "name": name}, origins, path)


def load_inline(
    spec: str | dict[str, Any],
    *,
    default_name: str,
    where: Path,
    lines: dict[KeyPath, int],
    credentials: dict[str, Any] | None = None,
) -> OsProfile:
    """A rig's profile: `os: NAME` or an inline mapping (extending a profile), plus the rig's credentials.

    `lines` are the rig file's, keyed from its top (`("os", "login", "user")`).
    """
    if isinstance(spec, str):
        path = _find(spec)
        data, origins = _chain(path, depth=0)
        name = spec
    else:
        origins_here = _origins_under(lines, ("os",), where)
        data, origins = _extend(spec, origins_here, where, depth=0)
        name = str(spec.get("name") or default_name)
    if credentials:
        overlay = _credential_overlay(credentials)
        overlay_origins = {
            path: origin
            for key, path in _CREDENTIAL_KEYS.items()
            if (origin := _origin(lines, ("credentials", key), where)) is not None
        }
        data, origins = _merge(data, origins, overlay, overlay_origins)
    return _validate({**data, "name": name}, origins, where)


# credentials.<key> -> where it lands in the profile
_CREDENTIAL_KEYS: dict[str, KeyPath] = {
    "login_user": ("login", "user"),
    "password": ("login", "password"),
    "password_env": ("login", "password_env"),
    "ssh_user": ("ssh", "user"),
    "ssh_port": ("ssh", "port"),
    "key_file": ("ssh", "key_file"),
}


def _credential_overlay(credentials: dict[str, Any]) -> dict[str, Any]:
    overlay: dict[str, Any] = {}
    for key, value in credentials.items():
        group, field = _CREDENTIAL_KEYS[key]
        overlay.setdefault(group, {})[field] = value
    return overlay


def _chain(path: Path, depth: int) -> tuple[dict[str, Any], Origins]:
    data, lines = yamlconf.read_yaml(path, RigConfigError)
    if data is None or data == {}:
        raise RigConfigError(f"{path}:1: an OS profile is a mapping of fields (extends, login, ssh, ...)")
    if not isinstance(data, dict):
        raise RigConfigError(f"{path}:1: an OS profile is a mapping of fields (extends, login, ssh, ...)")
    if "name" in data and data["name"] != path.stem:
        raise RigConfigError(
            f"{path}:{lines.get(('name',), 1)}: name: a profile file's name is its file name ({path.stem!r})"
        )
    return _extend(data, {key: (path, line) for key, line in lines.items()}, path, depth)


def _extend(data: dict[str, Any], origins: Origins, path: Path, depth: int) -> tuple[dict[str, Any], Origins]:
    """Merge `data` (from `path`) over the profile it extends, if any."""
    own = {k: v for k, v in data.items() if k != "extends"}
    parent_name = data.get("extends")
    if parent_name is None:
        return own, origins
    where = origins.get(("extends",), (path, 1))
    if not isinstance(parent_name, str) or not parent_name:
        raise RigConfigError(f"{where[0]}:{where[1]}: extends: the name of a profile is expected")
    if depth >= MAX_DEPTH:
        raise RigConfigError(f"{where[0]}:{where[1]}: extends: more than {MAX_DEPTH} profiles deep (a loop?)")
    parent_path = _find(parent_name, below=path if path.stem == parent_name else None)
    parent, parent_origins = _chain(parent_path, depth + 1)
    parent.pop("name", None)
    return _merge(parent, parent_origins, own, origins)


def _merge(
    base: dict[str, Any], base_origins: Origins, over: dict[str, Any], over_origins: Origins
) -> tuple[dict[str, Any], Origins]:
    """`over` merged onto `base`: mappings key by key, anything else replaces; origins follow the values."""
    origins = {path: o for path, o in base_origins.items() if not _replaced(path, over)}
    origins.update(over_origins)
    return _merged(base, over), origins


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _merged(base[key], value) if both else value
    return out


def _replaced(path: KeyPath, over: dict[str, Any]) -> bool:
    """Whether `over` puts something other than a mapping at or above `path` (so the base's is gone)."""
    node: Any = over
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
        if not isinstance(node, dict):
            return True
    return False


def _origins_under(lines: dict[KeyPath, int], prefix: KeyPath, where: Path) -> Origins:
    return {
        path[len(prefix) :]: (where, line) for path, line in lines.items() if path[: len(prefix)] == prefix
    }


def _origin(lines: dict[KeyPath, int], path: KeyPath, where: Path) -> tuple[Path, int] | None:
    line = lines.get(path)
    return None if line is None else (where, line)


def _validate(data: dict[str, Any], origins: Origins, path: Path) -> OsProfile:
    origins = {(): (path, 1), **origins}
    # The profiles it is made of, itself first: what else a profile brings (its faults) follows the chain.
    stems = [origin[0].stem for origin in origins.values() if origin[0] != path]
    lineage = tuple(dict.fromkeys([str(data["name"]), *stems]))
    profile = yamlconf.validate(OsProfile, {**data, "lineage": lineage}, origins, path, RigConfigError)
    key_file = profile.ssh.key_file
    if key_file is not None:
        # A key named in a file is relative to that file, as a user reading the file would expect.
        base = origins.get(("ssh", "key_file"), (path, 0))[0].parent
        resolved = base / key_file.expanduser()
        profile = profile.model_copy(update={"ssh": profile.ssh.model_copy(update={"key_file": resolved})})
    return profile
