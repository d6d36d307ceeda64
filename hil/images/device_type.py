"""Which device type an OS image is for: device-type.json on its boot partition, `<image>.json` sidecars
beside it, and the check against the rig's."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ImageError, ToolMissing
from hil.images.partitions import HEAD, Partition, boot_partition, partitions
from hil.images.read import CHUNK, ImageStream, check_integrity, open_image

log = logging.getLogger("hil.images.device_type")


@dataclass(frozen=True)
class ImageInfo:
    """What an image says about itself: the device type (slug) it is built for and its OS version."""

    device_type: str | None
    version: str | None


def read_info(path: Path) -> ImageInfo:
    """Device type (device-type.json's slug on the boot partition) and version (only a sidecar says it:
    the OS's own version is in os-release, see hil.images.osrelease), with `<image>.json` sidecars.

    The image's container is checked first (`check_integrity`). A sidecar fills in what the image does not
    carry; a sidecar that contradicts the image, or another sidecar, is refused rather than trusted.
    """
    path = Path(path)
    check_integrity(path)
    sources = [(str(s), _parse_manifest(s.read_bytes(), str(s))) for s in _sidecars(path) if s.is_file()]
    embedded = _embedded_info(path, sidecar=bool(sources))
    if embedded is not None:
        sources.append((f"{path}:/device-type.json", embedded))
    if not sources:
        log.info("image %s carries no device-type.json; its device type is unknown", path)
    return ImageInfo(_agreed(sources, "device_type", "device type"), _agreed(sources, "version", "version"))


def _agreed(sources: list[tuple[str, ImageInfo]], field: str, label: str) -> str | None:
    """The value the sources give for `field`; ImageError naming both sources when two of them differ."""
    said = [(where, str(value)) for where, info in sources if (value := getattr(info, field)) is not None]
    for where, value in said[1:]:
        if value != said[0][1]:
            first, first_value = said[0]
            raise ImageError(
                f"{first} says {label} {first_value}, but {where} says {value}; fix or remove the sidecar"
            )
    return said[0][1] if said else None


def _embedded_info(path: Path, *, sidecar: bool) -> ImageInfo | None:
    """device-type.json from the boot partition, or None when the image carries none."""
    with open_image(path) as stream:
        head = stream.read(HEAD)
        if sidecar and not any(p.fat for p in partitions(head)):
            return None  # the sidecar describes an image without a boot partition to read
        boot = boot_partition(head, path)
        if path.name.endswith(".img"):
            text = _mtype(f"{path}@@{boot.offset}", path)
        else:
            text = _mtype_from_stream(stream, head, boot, path)
    if text is None:
        return None
    # device-type.json's `version` is the version of that file's format (balena's is 1), never the OS's:
    # the OS version is os-release's (hil.images.osrelease).
    return dataclasses.replace(_parse_manifest(text, f"{path}:/device-type.json"), version=None)


def _sidecars(path: Path) -> list[Path]:
    names = [path.name + ".json"]
    for suffix in (".gz", ".xz", ".zip"):
        if path.name.endswith(suffix):
            names.append(path.name[: -len(suffix)] + ".json")
    return [path.with_name(name) for name in names]


def _parse_manifest(data: bytes, where: str) -> ImageInfo:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ImageError(f"{where} must be a JSON object with 'slug' and 'version'")
    return ImageInfo(device_type=manifest.get("slug"), version=manifest.get("version"))


def _mtype_from_stream(stream: ImageStream, head: bytes, boot: Partition, path: Path) -> bytes | None:
    # Decode only up to the end of the boot partition, into a file mtools can read.
    with tempfile.NamedTemporaryFile(prefix="hil-boot-", suffix=".vfat") as part:
        if boot.offset < len(head):
            part.write(head[boot.offset : boot.offset + boot.size])
        else:
            stream.seek(boot.offset)
        while (remaining := boot.size - part.tell()) > 0:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                raise ImageError(f"image {path} ends inside its boot partition")
            part.write(chunk)
        part.flush()
        return _mtype(part.name, path)


def _mtype(source: str, image: Path) -> bytes | None:
    if shutil.which("mtype") is None:
        raise ToolMissing("mtype (package mtools) is needed to read an image's boot partition")
    done = subprocess.run(
        ["mtype", "-i", source, "::/device-type.json"],
        capture_output=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
        check=False,
    )
    if done.returncode == 0:
        return done.stdout
    if b"not found" in done.stderr:
        return None
    raise ImageError(f"image {image}: cannot read its boot partition: {done.stderr.decode().strip()}")


def check_device_type(
    info: ImageInfo, rig_device_type: str, image_path: Path, asserted: str | None = None
) -> str:
    """Refuse an image for another device type than the rig's; say where its type came from.

    An image that names no device type is flashed only when the user states one (`asserted`): hil
    cannot see for itself that it fits the board. Returns "image" or "asserted".
    """
    if asserted is not None and asserted != rig_device_type:
        raise ImageError(f"--device-type {asserted} was given, but the rig takes {rig_device_type}")
    if info.device_type is None:
        if asserted is None:
            raise ImageError(
                f"image {image_path} does not say which device type it is for (no device-type.json on its "
                f"boot partition, no {image_path.name}.json beside it); if it is built for "
                f"{rig_device_type}, say so with --device-type {rig_device_type} or `device_type:` in its "
                "OS profile"
            )
        log.info("image %s names no device type; flashing it as %s, as the user stated", image_path, asserted)
        return "asserted"
    if info.device_type != rig_device_type:
        raise ImageError(
            f"image {image_path} is built for {info.device_type}; the rig takes {rig_device_type}"
        )
    return "image"
