"""A Debian 12 image updated by RAUC, an A/B updater hil did not write, and the bundles its suites install.

The plain Debian image (debian.py) with RAUC on top: GPT esp (a standalone GRUB that picks the slot from
RAUC's grubenv), rootA (this version), rootB (empty until the first install), data (/data: RAUC's slot
status, and room for the bundles a test copies in). Each slot carries its own kernel and initrd. systemd's
boot-complete health check marks a booted slot good, or bad and reboots. Beside the disk: one bundle per
role of the update suite, all of the next version and each broken one way, signed with keys made for this
image and kept in its cache directory, and a bundles file naming them. Made without mounts or loop
devices, cached by content hash.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import yaml

from hil.errors import ImageError
from hil.images.builders import cpio, debian, disk, kernel, rootfs
from hil.images.builders.buildlog import BuildLog
from hil.images.builders.cache import images_dir
from hil.images.builders.debs import SOURCES, SUITE, Package, resolve
from hil.images.builders.tools import require, run

# The update suite's bundle roles: hil.os.vocabulary.BundleRole, which the image builders may not import (the
# two are independent layers); a test keeps them equal.
Role = Literal[
    "good", "never-boots", "kernel-panics", "health-fails", "other-compatible", "other-key", "truncated"
]
ROLES: tuple[Role, ...] = get_args(Role)
COMPATIBLE = "hil-debian12-x86_64"  # files/rauc/root/etc/rauc/system.conf says the same
OTHER_COMPATIBLE = "other-board-x86_64"
# The plain image's packages, and what RAUC needs on the device: its D-Bus service (`rauc install` talks
# to it), grub-editenv (its GRUB backend), resize2fs (resize=true).
PACKAGES = (*debian.PACKAGES, "rauc", "rauc-service", "grub-common", "e2fsprogs")
FILES = rootfs.FILES / "rauc"
# Every MiB of the root is in each bundle and is copied at each install: Debian's minimal variant, without
# documentation, translations or udev's hardware database (names for USB and PCI ids; 22 MiB). The paths
# are the packages' own: bookworm's packages still ship /lib, which merged /usr links to /usr/lib.
_DPKG_PATHS = (
    "exclude=/usr/share/man/*",
    "exclude=/usr/share/info/*",
    "exclude=/usr/share/doc/*",
    "include=/usr/share/doc/*/copyright",
    "exclude=/usr/share/locale/*",
    "include=/usr/share/locale/locale.alias",
    "exclude=/lib/udev/hwdb.d/*",
)
_INIT_BOTTOM = "/etc/initramfs-tools/scripts/init-bottom/rauc-require-init"
_MMDEBSTRAP_OPTIONS = (
    "--variant=minbase",
    # Merged /usr made by mmdebstrap itself: otherwise apt meets "usrmerge | usr-is-merged" and installs
    # usrmerge, which needs perl: 60 MiB more in every bundle.
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    *(f"--dpkgopt=path-{rule}" for rule in _DPKG_PATHS),
    # Before initramfs-tools is installed, so that every initrd the build makes holds it.
    f"--essential-hook=install -D -m 755 {shlex.quote(str(FILES / 'initramfs' / 'rauc-require-init'))} "
    f'"$1{_INIT_BOTTOM}"',
)
# 1 GiB slots: room for a root that grows; 1 GiB of data: two bundles of about 100 MB with room to spare.
LAYOUT = (
    disk.Partition("esp", disk.ESP_TYPE, 64),
    disk.Partition("rootA", disk.LINUX_TYPE, 1024),
    disk.Partition("rootB", disk.LINUX_TYPE, 1024),
    disk.Partition("data", disk.LINUX_TYPE, 1024),
)
# What RAUC's GRUB logic needs beyond disk.GRUB_MODULES: wait, then reset, when a slot cannot be loaded.
GRUB_EXTRA_MODULES = ("sleep", "reboot")
# RAUC's state at first boot: A holds a good install and boots first; B holds nothing yet.
FIRST_GRUBENV = ("ORDER=A B", "A_OK=1", "A_TRY=0", "B_OK=0", "B_TRY=0")
_MKSQUASHFS_ARGS = "-comp zstd -Xcompression-level 6 -b 256K"
_BLOCK_SIZE = 4096  # mke2fs would give an image below 512 MiB 1 KiB blocks
_BUILDER = (Path(__file__), Path(cpio.__file__), *debian.BUILDER)
_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*", re.ASCII)


@dataclass(frozen=True)
class RaucImage:
    """A built RAUC image in the cache, with its bundles and the keyring that trusts them."""

    disk: Path  # the image to flash: `version` in slot A, slot B empty
    version: str  # the OS version in slot A
    version_after: str  # the version the bundles carry: the next one
    bundles: dict[Role, Path]  # role -> bundle of `version_after`
    bundles_file: Path  # YAML beside the disk: `version` the good bundle installs, then role -> file name
    keyring: Path  # the CA certificate the image trusts (its /etc/rauc/keyring.pem)
    private_key: Path | None = None  # always None: root logs in on the console with a password


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a RAUC image and its bundles: hashed into its cache key."""

    version: str
    packages: tuple[Package, ...]
    root_password: str

    def cache_key(self) -> str:
        """Hash of the recipe and the builder's code and files."""
        packages = [f"{p.name}={p.version}" for p in self.packages]
        files = [*debian.files_below(FILES), *debian.files_below(debian.FILES)]
        return debian.content_key(
            [*_BUILDER, *files], ["rauc", SUITE, SOURCES, self.version, packages, self.root_password]
        )


def next_version(version: str) -> str:
    """The version one release later, which the bundles install: the last number raised by one."""
    if not _VERSION.fullmatch(version):
        raise ImageError(
            f"version {version!r} must be numbers joined by dots (e.g. 1.0.0): the bundles carry the next "
            "version, the last number raised by one"
        )
    numbers = version.split(".")
    numbers[-1] = str(int(numbers[-1]) + 1)
    return ".".join(numbers)


def recipe(version: str, root_password: str | None = None) -> Recipe:
    """Check the arguments and turn them into a Recipe; its package versions are left for the caller."""
    next_version(version)
    return Recipe(version, (), debian.root_password_for(root_password))


def image_in(directory: Path, version: str) -> RaucImage:
    """Where the image of `version` and its bundles lie in a cache entry."""
    stem = f"debian12-rauc-{version}"
    later = next_version(version)
    return RaucImage(
        disk=directory / f"{stem}.img",
        version=version,
        version_after=later,
        bundles={role: directory / f"rauc-{later}-{role}.raucb" for role in ROLES},
        bundles_file=directory / f"{stem}.bundles.yaml",
        keyring=directory / "keys" / "release" / "ca.cert.pem",
    )


def bundles_yaml(version: str, bundles: dict[Role, Path]) -> str:
    """The bundles file: the version the good bundle installs, then each role's file, relative to it."""
    listed: dict[str, str] = {"version": version, **{role: path.name for role, path in bundles.items()}}
    return yaml.safe_dump(listed, sort_keys=False)


def os_release(version: str) -> str:
    """/usr/lib/os-release of one version: `. /etc/os-release; echo $VERSION_ID` gives `version`."""
    return (
        f'PRETTY_NAME="Debian GNU/Linux 12 (bookworm) with RAUC, hil test image {version}"\n'
        'NAME="Debian GNU/Linux with RAUC"\nID=debian-rauc\nID_LIKE=debian\n'
        f'VERSION_ID={version}\nVERSION="{version} (bookworm)"\nVERSION_CODENAME=bookworm\n'
        f"IMAGE_ID=hil-debian12-rauc\nIMAGE_VERSION={version}\n"
    )


def build_rauc(
    *, version: str = "1.0.0", cache: Path | None = None, log: Callable[[str], None] = print
) -> RaucImage:
    """Build the RAUC image of `version` and its bundles of the next version, or return the cached ones."""
    checked = recipe(version)  # refuse a bad version before asking apt
    wanted = dataclasses.replace(checked, packages=tuple(resolve(PACKAGES)))
    final = images_dir(cache) / f"debian12-rauc-{wanted.cache_key()}"
    image = image_in(final, version)
    if final.is_dir():
        log(f"cached: {image.disk}")
        return image
    debian.preflight("the RAUC image", ("chroot", "grub-editenv", "openssl", "rauc", "mksquashfs"))
    info = {
        "version": version,
        "bundles_version": image.version_after,
        "compatible": COMPATIBLE,
        "packages": {p.name: p.version for p in wanted.packages},
    }
    debian.build_once(
        final,
        f"the Debian 12 RAUC image {version}",
        lambda tmp, blog: _build(tmp, image_in(tmp, version), wanted, blog),
        info,
        log,
    )
    return image


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def make_pki(directory: Path, name: str) -> Pki:
    """A CA and a signing certificate it issued, made with openssl (RAUC checks a bundle against the CA)."""
    directory.mkdir(parents=True, mode=0o700)
    pki = Pki(directory / "ca.cert.pem", directory / "signing.cert.pem", directory / "signing.key.pem")
    ca_key = directory / "ca.key.pem"
    new = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650"]
    ca_usage = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"]
    run([*new, "-subj", f"/O=hil/CN={name} CA", "-keyout", ca_key, "-out", pki.ca, *_addext(ca_usage)])
    # No extendedKeyUsage: RAUC 1.8 then takes the certificate for signing bundles.
    signer_usage = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature"]
    run([*new, "-subj", f"/O=hil/CN={name} signing", "-CA", pki.ca, "-CAkey", ca_key,
         "-keyout", pki.key, "-out", pki.cert, *_addext(signer_usage)])  # fmt: skip
    return pki


def _addext(extensions: list[str]) -> list[str]:
    return [arg for extension in extensions for arg in ("-addext", extension)]


def _build(out: Path, target: RaucImage, wanted: Recipe, blog: BuildLog) -> None:
    """Make the keys, the root tree, the disk and the bundles `target` names, working in `out`/work."""
    work = out / "work"
    work.mkdir()
    release = make_pki(out / "keys" / "release", "hil RAUC release")
    stranger = make_pki(out / "keys" / "other", "hil RAUC untrusted")
    blog.phase("keys made: a release CA and signer, an untrusted CA and signer")
    root = work / "root"
    debian.mmdebstrap(root, PACKAGES, wanted.root_password, blog, options=_MMDEBSTRAP_OPTIONS)
    configure(root, release.ca)
    (root / "usr" / "lib" / "os-release").write_text(os_release(wanted.version))
    blog.phase(f"root tree configured: RAUC, health check, hostname rauc, version {wanted.version}")
    _disk(work, root, target.disk)
    blog.phase(f"disk written: {target.disk.name} ({wanted.version} in slot A, slot B empty)")

    later = target.version_after
    (root / "usr" / "lib" / "os-release").write_text(os_release(later))
    images = _slot_images(root, work)
    blog.phase(f"slot images of {later} made: good, never-boots, kernel-panics, health-fails")
    _bundles(target.bundles, images, later, (release, stranger), work, blog)
    target.bundles_file.write_text(bundles_yaml(later, target.bundles))
    shutil.rmtree(work)


def configure(root: Path, keyring: Path) -> None:
    """The plain image's settings, then RAUC's: its configuration and keyring, the health check, the
    kernel and initrd where GRUB loads them, the mount points of the ESP and the data partition."""
    debian.configure(root, None)
    rootfs.copy_files(FILES / "root", root)
    shutil.copyfile(keyring, root / "etc" / "rauc" / "keyring.pem")
    for directory in ("boot/efi", "data"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    # Debian puts its kernel links in /; GRUB loads /boot/vmlinuz and /boot/initrd.img of the slot it picked.
    (root / "boot" / "vmlinuz").symlink_to(kernel.vmlinuz(root).name)
    (root / "boot" / "initrd.img").symlink_to(kernel.initrd(root).name)
    _enable(root, "rauc-mark-good.service", "systemd-boot-check-no-failures.service")


def _enable(root: Path, *units: str) -> None:
    # The tree's own systemctl, offline: it reads each unit's [Install] section and makes the links.
    run(["chroot", root, "systemctl", "enable", "--quiet", *units])


def _disk(work: Path, root: Path, out: Path) -> None:
    """The disk: RAUC's GRUB and grubenv on the ESP, the root tree in slot A, B empty, /data."""
    efi, grubenv = work / "BOOTX64.EFI", work / "grubenv"
    disk.grub_efi(efi, FILES / "grub.cfg", extra_modules=GRUB_EXTRA_MODULES)
    run(["grub-editenv", grubenv, "create"])  # the program RAUC edits it with on the device
    run(["grub-editenv", grubenv, "set", *FIRST_GRUBENV])
    images = {name: work / f"{name}.img" for name in ("esp", "rootA", "data")}
    disk.mkfs_vfat(
        images["esp"], LAYOUT[0].size_mib, "ESP", {"EFI/BOOT/BOOTX64.EFI": efi, "grubenv": grubenv}
    )
    disk.mkfs_ext4(images["rootA"], LAYOUT[1].size_mib, "root", root, block_size=_BLOCK_SIZE)
    data = work / "data"
    (data / "rauc").mkdir(parents=True, mode=0o700)  # RAUC's data-directory
    disk.mkfs_ext4(images["data"], LAYOUT[3].size_mib, "data", data, block_size=_BLOCK_SIZE)
    disk.assemble(out, images, LAYOUT)


def _image_mib(tree: Path) -> int:
    """An ext4 size that holds `tree` with room to spare. RAUC copies the whole image into the slot and
    then grows it, so an image no larger than needed installs faster."""
    blocks = 0
    for directory, subdirectories, names in os.walk(tree):
        blocks += len(subdirectories)  # one block each; a few large ones are covered by the margin
        for name in names:
            blocks += -(-os.lstat(os.path.join(directory, name)).st_size // _BLOCK_SIZE)
    # A tenth more, and 48 MiB for the journal (16 MiB at this size) and the inode tables (about 12 MiB).
    return blocks * _BLOCK_SIZE * 11 // 10 // disk.MIB + 48


def _slot_images(root: Path, work: Path) -> dict[Role, Path]:
    """The ext4 image each kind of bundle carries, from the next version's tree, broken one way at a time."""
    size = _image_mib(root)
    images: dict[Role, Path] = {}

    def image(role: Role) -> None:
        images[role] = work / f"{role}.ext4"
        disk.mkfs_ext4(images[role], size, "root", root, block_size=_BLOCK_SIZE)

    image("good")
    # never-boots: no /sbin/init (/usr/sbin/init, merged /usr). The initrd's rauc-require-init panics.
    init, aside = root / "usr" / "sbin" / "init", work / "init"
    init.rename(aside)
    image("never-boots")
    aside.rename(init)
    # kernel-panics: the slot's initrd holds an /init that is not executable. The kernel then looks for
    # the root itself, has no virtio_blk (a module) and panics before any of the slot's userspace runs.
    initrd, bad = root / "boot" / "initrd.img", work / "bad-initrd"
    link = os.readlink(initrd)
    (bad / "tree").mkdir(parents=True)
    (bad / "tree" / "init").write_text("#!/bin/sh\nexit 1\n")
    (bad / "tree" / "init").chmod(0o644)
    initrd.unlink()
    cpio.write_newc(bad / "tree", initrd, {})
    image("kernel-panics")
    initrd.unlink()
    initrd.symlink_to(link)
    # health-fails, last, as nothing comes after it: boots, but a unit fails, so the health check fails.
    rootfs.copy_files(FILES / "health-fails", root)
    _enable(root, "broken.service")
    image("health-fails")
    return images


def _bundles(
    out: dict[Role, Path],
    images: dict[Role, Path],
    version: str,
    keys: tuple[Pki, Pki],
    work: Path,
    blog: BuildLog,
) -> None:
    """Every role's bundle, into the paths `out` names; `keys`: the release signer, a stranger."""
    release, stranger = keys

    def bundle(role: Role, image: Path, compatible: str = COMPATIBLE) -> None:
        content = work / "bundle"
        content.mkdir()
        os.link(image, content / "rootfs.ext4")
        (content / "manifest.raucm").write_text(
            f"[update]\ncompatible={compatible}\nversion={version}\n"
            f"description=hil Debian 12 RAUC image {version}, {role} test bundle\n\n"
            "[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.ext4\n"
        )
        blog.run(
            [require("rauc"), "bundle", f"--cert={release.cert}", f"--key={release.key}",
             f"--signing-keyring={release.ca}", f"--mksquashfs-args={_MKSQUASHFS_ARGS}", str(content),
             str(out[role])],
            env=dict(os.environ), name=f"rauc bundle {role}",
        )  # fmt: skip
        shutil.rmtree(content)

    for role, image in images.items():
        bundle(role, image)
    bundle("other-compatible", images["good"], OTHER_COMPATIBLE)
    # other-key: the good bundle signed by a CA the image does not trust (resigning takes a second).
    run(["rauc", "resign", f"--keyring={release.ca}", f"--cert={stranger.cert}", f"--key={stranger.key}",
         f"--signing-keyring={stranger.ca}", out["good"], out["other-key"]])  # fmt: skip
    size = out["good"].stat().st_size
    with out["good"].open("rb") as good, out["truncated"].open("wb") as truncated:
        truncated.write(good.read(size // 2))  # a download cut short: the good bundle's first half
    sizes = ", ".join(f"{role} {path.stat().st_size / 1e6:.1f} MB" for role, path in out.items())
    blog.phase(f"bundles of {version} made: {sizes}")
