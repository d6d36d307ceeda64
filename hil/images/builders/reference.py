"""Build (or fetch from the cache) the reference image: a bootable GPT disk plus its update bundle."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import platform
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ImageError
from hil.images import arch as arches
from hil.images.arch import Arch
from hil.images.builders import disk, kernel, rootfs
from hil.images.builders.cache import building, images_dir, one_builder
from hil.images.builders.cpio import write_newc
from hil.images.builders.debs import HOST, Apt, Package, foreign_apt, resolve, unpack
from hil.images.builders.sshkey import default_public_key
from hil.images.hil_bundle import write_bundle
from hil.util.paths import cache_dir

VARIANTS: tuple[str, ...] = rootfs.VARIANTS  # the OS with its A/B roots, healthy or broken
# An installer that writes the healthy OS onto a board's internal disk and powers off, as balenaOS's
# images for generic x86 boards do; it says so with balena's marker file on its boot partition.
FLASHER = "flasher"
FLASHER_MARKER = "balena-image-flasher"
FLASHER_BOOT_MIB = 32
# The healthy OS with a kernel that prints nothing on the serial console, as production balenaOS boots
# (`console=null quiet`): its reboots show no "reboot: Restarting system", only GRUB and the login.
QUIET = "quiet"
# The kernel's console is a screen the board does not have. Not `console=null`: Debian's kernel has no
# ttynull, so that would leave the OS no /dev/console at all, which the image's own scripts write to.
# loglevel=0 keeps the kernel silent on any console it still has (the firmware of a 64-bit Arm board can
# name the UART one, in its ACPI SPCR table).
QUIET_KERNEL_CONSOLE = "console=tty0 quiet loglevel=0"
HOSTNAME = "hil-dut"
HOST_ARCH = platform.machine()  # the architecture whose packages the host's own apt fetches
_DEVICE_NODES = {"dev/console": (5, 1), "dev/null": (1, 3)}
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
    """Hash of everything the image is made from: this builder's code and files, packages (with their
    architecture), arguments."""
    sha = hashlib.sha256()
    for path in sorted(p for p in _SOURCES.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        sha.update(f"{path.relative_to(_SOURCES)}\0".encode() + path.read_bytes() + b"\0")
    for package in packages:
        sha.update(f"{package.name}={package.version}{':' + package.arch if package.arch else ''}\0".encode())
    sha.update(f"{version}\0{variant}\0{ssh_key}\0".encode())
    return sha.hexdigest()[:16]


def _image(directory: Path, version: str, variant: str, arch: Arch) -> ReferenceImage:
    stem = f"hil-reference-{arch.device_type}-{version}-{variant}"
    return ReferenceImage(
        disk=directory / f"{stem}.img",
        bundle=directory / f"{stem}.bundle.tar",
        version=version,
        device_type=arch.device_type,
        variant=variant,
    )


def grub_cfg(arch: Arch, template: Path = rootfs.FILES / "grub.cfg", *, quiet: bool = False) -> str:
    """The image's grub.cfg for `arch`: its console, the kernel's (none on the serial line where `quiet`),
    and the GPT partition numbers of the root slots."""
    slots = {p.name: str(n) for n, p in enumerate(disk.LAYOUT, start=1)}
    terminal = "serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial"
    fields = {
        "@TERMINAL@": terminal if arch.grub_serial else "# the firmware's console is the serial port",
        "@CONSOLE@": arch.console,
        "@KERNEL_CONSOLE@": QUIET_KERNEL_CONSOLE if quiet else f"console={arch.console},115200",
        "@ROOT_A@": slots["rootA"],
        "@ROOT_B@": slots["rootB"],
    }
    text = template.read_text()
    for field, value in fields.items():
        text = text.replace(field, value)
    return text


def _boot_payload(
    work: Path, trees: dict[str, Path], root_tree: Path, arch: Arch, variant: str, applets: list[str]
) -> None:
    """The slot's kernel and initramfs in the root's /boot, where GRUB loads them from.

    The broken-kernel variant ships an initramfs without /init: its kernel cannot find a root and
    panics at every boot, before any of the slot's userspace runs.
    """
    initramfs_tree = work / "initramfs"
    if variant == "broken-kernel":
        initramfs_tree.mkdir()
    else:
        rootfs.build_initramfs_tree(trees, initramfs_tree, arch, applets)
    write_newc(initramfs_tree, root_tree / "boot" / "initrd", _DEVICE_NODES)
    shutil.copyfile(kernel.vmlinuz(kernel.package_tree(trees)), root_tree / "boot" / "vmlinuz")


def _build(
    work: Path,
    target: ReferenceImage,
    arch: Arch,
    trees: dict[str, Path],
    tools: dict[str, Path],
    ssh_key: str,
    log: Callable,
) -> None:
    """Make every file of the image in `work`, then the disk and the bundle named by `target`."""
    applets = rootfs.applet_list(tools["busybox-static"] / "bin" / "busybox")
    root_tree = work / "rootfs"
    quiet = target.variant == QUIET
    root_variant = "healthy" if quiet else target.variant  # quiet differs in its kernel's command line
    rootfs.build_rootfs_tree(trees, root_tree, target.version, root_variant, arch, applets)
    _boot_payload(work, trees, root_tree, arch, root_variant, applets)
    log(f"root, kernel and initramfs assembled for {target.version} ({target.variant}, {arch.name})")

    (work / "grub.cfg").write_text(grub_cfg(arch, quiet=quiet))
    efi = work / Path(arch.efi_binary).name
    disk.grub_efi(
        efi, work / "grub.cfg", trees[f"grub-efi-{arch.debian}-bin"] / "usr/lib/grub" / arch.grub_target
    )
    boot = {arch.efi_binary: efi}
    config = {"hostname": HOSTNAME, "os": {"sshKeys": [ssh_key]}}
    for name, text in rootfs.boot_files(target.version, config, arch.device_type).items():
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
    write_bundle(
        root, target.bundle, version=target.version, device_type=arch.device_type, variant=target.variant
    )
    log(f"update bundle written: {target.bundle.name}")


def flasher_layout(root_mib: int) -> tuple[disk.Partition, ...]:
    """The flasher's GPT: its boot partition (GRUB, the installer's kernel and initramfs, config.json,
    the marker) and a root holding the OS it installs, labelled apart from that OS's as on balenaOS."""
    return (
        disk.Partition("flash-boot", disk.ESP_TYPE, FLASHER_BOOT_MIB),
        disk.Partition("flash-rootA", disk.LINUX_TYPE, root_mib),
    )


def _build_flasher(
    work: Path,
    target: ReferenceImage,
    arch: Arch,
    trees: dict[str, Path],
    tools: dict[str, Path],
    carried: ReferenceImage,
    ssh_key: str,
    log: Callable,
) -> None:
    """The installer of `carried`: its kernel with an initramfs whose /init writes `carried` onto the
    internal disk, copies config.json after it and powers off; `carried`, gzipped, on its root."""
    work.mkdir()
    applets = rootfs.applet_list(tools["busybox-static"] / "bin" / "busybox")
    rootfs.build_initramfs_tree(
        trees, work / "initramfs", arch, applets, init=rootfs.FILES / "flasher" / "initramfs"
    )
    write_newc(work / "initramfs", work / "initrd", _DEVICE_NODES)
    shutil.copyfile(kernel.vmlinuz(kernel.package_tree(trees)), work / "vmlinuz")
    (work / "grub.cfg").write_text(grub_cfg(arch, rootfs.FILES / "flasher" / "grub.cfg"))
    efi = work / Path(arch.efi_binary).name
    disk.grub_efi(
        efi, work / "grub.cfg", trees[f"grub-efi-{arch.debian}-bin"] / "usr/lib/grub" / arch.grub_target
    )
    boot = {arch.efi_binary: efi, "vmlinuz": work / "vmlinuz", "initrd": work / "initrd"}
    config = {"hostname": HOSTNAME, "os": {"sshKeys": [ssh_key]}}
    texts = rootfs.boot_files(target.version, config, arch.device_type)
    for name in ("config.json", "device-type.json"):
        (work / name).write_text(texts[name])
        boot[name] = work / name
    (work / FLASHER_MARKER).write_bytes(b"")
    boot[FLASHER_MARKER] = work / FLASHER_MARKER

    # The root names the version it installs (os-release, where hil reads an image's version).
    root = work / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text(rootfs.os_release(target.version, arch.device_type))
    (root / "opt").mkdir()
    payload = root / "opt" / f"{carried.disk.name}.gz"
    with carried.disk.open("rb") as raw, gzip.open(payload, "wb", compresslevel=6) as packed:
        shutil.copyfileobj(raw, packed, 1 << 20)
    log(f"{carried.disk.name} packed for the installer: {payload.stat().st_size >> 20} MiB")

    payload_mib = payload.stat().st_size / (1 << 20)
    layout = flasher_layout(math.ceil(payload_mib * 1.1) + 16)  # room for ext4's journal and tables
    images = {p.name: work / f"{p.name}.img" for p in layout}
    disk.mkfs_vfat(images["flash-boot"], FLASHER_BOOT_MIB, "flash-boot", boot)
    disk.mkfs_ext4(images["flash-rootA"], layout[1].size_mib, "flash-rootA", root)
    disk.assemble(target.disk, images, layout)
    shutil.copyfile(carried.bundle, target.bundle)  # the update bundle of the version it installs
    log(f"flasher written: {target.disk.name}")


def _apt(arch: Arch, cache: Path) -> Apt:
    """The host's apt for the host's architecture, a private configuration for another."""
    return HOST if arch.name == HOST_ARCH else foreign_apt(arch.debian, cache / f"apt-{arch.debian}")


def build_reference(
    version: str = "1.0.0",
    variant: str = "healthy",
    *,
    arch: str = "x86_64",
    cache: Path | None = None,
    log: Callable[[str], None] = print,
) -> ReferenceImage:
    """Build the reference image for a version, variant and architecture, or return the cached one.
    The `flasher` variant is an installer that carries the healthy image and writes it onto a board's
    internal disk; `quiet` is the healthy image with a kernel silent on the serial console."""
    if variant not in (*VARIANTS, FLASHER, QUIET):
        choices = ", ".join((*VARIANTS, FLASHER, QUIET))
        raise ImageError(f"unknown reference image variant {variant!r}; choose one of {choices}")
    if not _VERSION.fullmatch(version):
        raise ImageError(f"version {version!r} must be letters, digits and . + ~ _ - (e.g. 1.0.0)")
    target_arch = arches.get(arch)
    cache = cache or cache_dir()
    apt = _apt(target_arch, cache)
    packages = resolve([*rootfs.packages(target_arch), f"grub-efi-{target_arch.debian}-bin"], apt)
    # Programs the build runs on this host (busybox lists its applets): the host's architecture.
    host_tools = resolve(["busybox-static"])
    ssh_key = default_public_key(cache)
    images = images_dir(cache)
    final = images / _cache_key([*packages, *host_tools], version, variant, ssh_key)
    if final.is_dir():
        image = _image(final, version, variant, target_arch)
        log(f"cached: {image.disk}")
        return image

    started = time.monotonic()
    with one_builder(final) as needed:
        if needed:
            log(f"building the reference image {version} ({variant}, {target_arch.name}) in {images}")
            _build_entry(final, version, variant, target_arch, packages, host_tools, ssh_key, cache, apt, log)
    image = _image(final, version, variant, target_arch)
    log(f"built {image.disk} in {time.monotonic() - started:.1f} s")
    return image


def _build_entry(
    final: Path, version: str, variant: str, target_arch: arches.Arch, packages: list[Package],
    host_tools: list[Package], ssh_key: str, cache: Path, apt: Apt, log: Callable[[str], None],
) -> None:  # fmt: skip
    """Build the cache entry `final` (the caller holds its build lock)."""
    flasher = variant == FLASHER
    carried = build_reference(version, arch=target_arch.name, cache=cache, log=log) if flasher else None
    with building(final) as tmp:
        trees = unpack(packages, cache / "debs", apt)
        tools = unpack(host_tools, cache / "debs")
        log(f"packages ready: {', '.join(f'{p.name} {p.version}' for p in packages[:4])}, ...")
        target = _image(tmp, version, variant, target_arch)
        if carried is not None:
            _build_flasher(tmp / "work", target, target_arch, trees, tools, carried, ssh_key, log)
        else:
            _build(tmp / "work", target, target_arch, trees, tools, ssh_key, log)
        shutil.rmtree(tmp / "work")
        (tmp / "image.json").write_text(
            json.dumps(
                {
                    "version": version,
                    "variant": variant,
                    "device_type": target_arch.device_type,
                    "arch": target_arch.name,
                    "packages": {p.name: p.version for p in packages},
                },
                indent=2,
            )
            + "\n"
        )
