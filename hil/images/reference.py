"""Build (or fetch from the cache) the reference image: a bootable GPT disk plus its update bundle."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ImageError
from hil.images import disk, kernel, rootfs
from hil.images.bundle import write_bundle
from hil.images.cache import building, images_dir
from hil.images.cpio import write_newc
from hil.images.debs import Package, resolve, unpack
from hil.images.sshkey import default_public_key
from hil.paths import cache_dir

VARIANTS: tuple[str, ...] = rootfs.VARIANTS
DEVICE_TYPE = rootfs.DEVICE_TYPE
HOSTNAME = "hil-dut"
_SOURCES = Path(__file__).parent
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+~_-]*")


@dataclass(frozen=True)
class ReferenceImage:
    """A built reference image in the cache."""

    disk: Path
    bundle: Path
    version: str
    device_type: str
    variant: str


def _cache_key(packages: list[Package], version: str, variant: str, ssh_key: str) -> str:
    """Hash of everything the image is made from: this builder's code and files, packages, arguments."""
    sha = hashlib.sha256()
    for path in sorted(p for p in _SOURCES.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        sha.update(f"{path.relative_to(_SOURCES)}\0".encode() + path.read_bytes() + b"\0")
    for package in packages:
        sha.update(f"{package.name}={package.version}\0".encode())
    sha.update(f"{version}\0{variant}\0{ssh_key}\0".encode())
    return sha.hexdigest()[:16]


def _image(directory: Path, version: str, variant: str) -> ReferenceImage:
    stem = f"hil-reference-{DEVICE_TYPE}-{version}-{variant}"
    return ReferenceImage(
        disk=directory / f"{stem}.img",
        bundle=directory / f"{stem}.bundle.tar",
        version=version,
        device_type=DEVICE_TYPE,
        variant=variant,
    )


def _build(work: Path, target: ReferenceImage, trees: dict[str, Path], ssh_key: str, log: Callable) -> None:
    """Make every file of the image in `work`, then the disk and the bundle named by `target`."""
    initramfs_tree, root_tree = work / "initramfs", work / "rootfs"
    rootfs.build_initramfs_tree(trees, initramfs_tree)
    write_newc(initramfs_tree, work / "initrd", {"dev/console": (5, 1), "dev/null": (1, 3)})
    rootfs.build_rootfs_tree(trees, root_tree, target.version, target.variant)
    log(f"root filesystem and initramfs assembled for {target.version} ({target.variant})")

    disk.grub_efi(work / "BOOTX64.EFI", rootfs.FILES / "grub.cfg")
    boot = {
        "EFI/BOOT/BOOTX64.EFI": work / "BOOTX64.EFI",
        "vmlinuz": kernel.vmlinuz(kernel.package_tree(trees)),
        "initrd": work / "initrd",
    }
    config = {"hostname": HOSTNAME, "os": {"sshKeys": [ssh_key]}}
    for name, text in rootfs.boot_files(target.version, config).items():
        (work / name).write_text(text)
        boot[name] = work / name

    root = work / "root.img"
    images = {name: work / f"{name}.img" for name in ("boot", "state", "data")}
    disk.mkfs_vfat(images["boot"], disk.size_mib("boot"), "boot", boot)
    disk.mkfs_ext4(root, disk.size_mib("rootA"), "root", root_tree)
    disk.mkfs_ext4(images["state"], disk.size_mib("state"), "state")
    disk.mkfs_ext4(images["data"], disk.size_mib("data"), "data")
    # rootB starts as a copy of rootA, so either slot boots the version the disk was built as.
    disk.assemble(target.disk, {**images, "rootA": root, "rootB": root})
    log(f"disk written: {target.disk.name}")
    write_bundle(root, target.bundle, version=target.version, device_type=DEVICE_TYPE, variant=target.variant)
    log(f"update bundle written: {target.bundle.name}")


def build_reference(
    version: str = "1.0.0",
    variant: str = "healthy",
    *,
    cache: Path | None = None,
    log: Callable[[str], None] = print,
) -> ReferenceImage:
    """Build the reference image for a version and variant, or return the cached one at once."""
    if variant not in VARIANTS:
        raise ImageError(f"unknown reference image variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if not _VERSION.fullmatch(version):
        raise ImageError(f"version {version!r} must be letters, digits and . + ~ _ - (e.g. 1.0.0)")
    cache = cache or cache_dir()
    packages = resolve(rootfs.PACKAGES)
    ssh_key = default_public_key(cache)
    images = images_dir(cache)
    final = images / _cache_key(packages, version, variant, ssh_key)
    if final.is_dir():
        image = _image(final, version, variant)
        log(f"cached: {image.disk}")
        return image

    started = time.monotonic()
    log(f"building the reference image {version} ({variant}) in {images}")
    with building(final) as tmp:
        trees = unpack(packages, cache / "debs")
        log(f"packages ready: {', '.join(f'{p.name} {p.version}' for p in packages[:4])}, ...")
        _build(tmp / "work", _image(tmp, version, variant), trees, ssh_key, log)
        shutil.rmtree(tmp / "work")
        (tmp / "image.json").write_text(
            json.dumps(
                {
                    "version": version,
                    "variant": variant,
                    "device_type": DEVICE_TYPE,
                    "packages": {p.name: p.version for p in packages},
                },
                indent=2,
            )
            + "\n"
        )
    image = _image(final, version, variant)
    log(f"built {image.disk} in {time.monotonic() - started:.1f} s")
    return image
