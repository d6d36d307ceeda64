"""What an update bundle says about itself, read on the host before anything is sent to a DUT.

Two formats are understood; any other (a RAUC bundle, say) is one only its own updater reads, and
`read_bundle` says so by returning None:
- hil's own: a tar whose first member, manifest.json, is an object (version, device_type, rootfs);
- `docker save`, as balenaOS ships a hostapp: a tar whose manifest.json is a *list* of images, each
  naming its config (a JSON member) and its layers. The OS version comes from the image config's OCI
  label `org.opencontainers.image.version`. Both layouts docker save writes are read: the classic one
  (`<id>.json`) and the OCI one of Docker 25 and later (`blobs/sha256/<id>`).
Every read is bounded: members scanned, and the size of each JSON member read. A truncated bundle in
hil's format still names its contents: its manifest is the first member.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hil.errors import ImageError

MANIFEST = "manifest.json"
VERSION_LABEL = "org.opencontainers.image.version"
MAX_MEMBERS = 100_000
MAX_JSON_BYTES = 1 << 20


@dataclass(frozen=True)
class BundleInfo:
    """A bundle's format, and the OS version and device type it says it carries (None: not said)."""

    format: Literal["hil", "docker-save"]
    version: str | None
    device_type: str | None = None


def _read_json(bundle: Path, name: str) -> Any:
    """Member `name` of a tar, parsed as JSON; None when the tar has no such member (or ends first)."""
    try:
        with tarfile.open(bundle, "r:") as tar:  # headers only: the data between them is seeked over
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    raise ImageError(f"{bundle}: more than {MAX_MEMBERS} members; not a bundle hil reads")
                if member.name != name:
                    continue
                data = tar.extractfile(member)
                if data is None or member.size > MAX_JSON_BYTES:
                    raise ImageError(f"{bundle}: {name} is not a JSON file of at most {MAX_JSON_BYTES} bytes")
                return json.load(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImageError(f"{bundle}: {name} is not JSON: {exc}") from exc
    except (tarfile.TarError, OSError) as exc:
        raise ImageError(f"{bundle} is not an update bundle hil reads: {exc}") from exc
    return None


def read_manifest(bundle: Path) -> dict[str, Any]:
    """The manifest of a bundle in hil's own format; ImageError when the file is not one."""
    manifest = _read_json(bundle, MANIFEST)
    if not isinstance(manifest, dict):
        raise ImageError(f"{bundle} is not an update bundle in hil's format: no {MANIFEST} object")
    return manifest


def _text(value: object, what: str, bundle: Path) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ImageError(f"{bundle}: {what} is {type(value).__name__}, not text")


def _docker_save(bundle: Path, manifest: list[Any]) -> BundleInfo:
    """A `docker save` archive of one image: its config must be in the archive and say it is an image."""
    if len(manifest) != 1 or not isinstance(manifest[0], dict):
        raise ImageError(f"{bundle}: a hostapp bundle holds one image; its {MANIFEST} lists {len(manifest)}")
    entry = manifest[0]
    config_name, layers = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layers, list) or not layers:
        raise ImageError(f"{bundle}: {MANIFEST} names no Config and Layers, as docker save writes them")
    config = _read_json(bundle, config_name)
    if not isinstance(config, dict):
        raise ImageError(f"{bundle}: the image config {config_name} is not in the archive")
    labels = (config.get("config") or {}).get("Labels") or {}
    if not isinstance(labels, dict):
        raise ImageError(f"{bundle}: the image config's Labels are not a mapping")
    return BundleInfo("docker-save", _text(labels.get(VERSION_LABEL), VERSION_LABEL, bundle))


def read_bundle(bundle: Path) -> BundleInfo | None:
    """What `bundle` says of itself; None for a format only its own updater reads (not a tar, or a tar
    with no manifest.json); ImageError for a manifest that is malformed."""
    try:
        manifest = _read_json(bundle, MANIFEST)
    except ImageError:
        if not tarfile.is_tarfile(bundle):
            return None
        raise
    if manifest is None:
        return None
    if isinstance(manifest, list):
        return _docker_save(bundle, manifest)
    if isinstance(manifest, dict):
        version = _text(manifest.get("version"), "its version", bundle)
        return BundleInfo("hil", version, _text(manifest.get("device_type"), "its device type", bundle))
    raise ImageError(f"{bundle}: {MANIFEST} is {type(manifest).__name__}, neither hil's nor docker save's")
