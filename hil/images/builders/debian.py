"""A plain Debian 12 image, the foreign DUT: proof that hil tests an OS it did not shape.

mmdebstrap installs Debian's own packages into a directory; the disk is then made without loop devices
or mounts (mkfs.ext4 -d, a FAT ESP holding a standalone GRUB with the kernel and initrd, GPT by sfdisk),
and cached by content hash. Nothing in it knows about hil: no device type, no config.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ImageError
from hil.images.builders import buildlog, disk, kernel, rootfs, tools
from hil.images.builders.cache import building, images_dir, one_builder
from hil.images.builders.debs import SOURCES, SUITE, Package, resolve
from hil.images.builders.sshkey import write_key_pair

VARIANTS = ("password", "key", "no-sshd")
DEFAULT_ROOT_PASSWORD = "hil-debian"
ROOT_PASSWORD_ENV = "HIL_DEBIAN_ROOT_PASSWORD"
# On top of mmdebstrap's default package set (Debian's "important" priority, as debootstrap installs).
PACKAGES = (
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "chrony",
    "systemd-resolved",
    "curl",
    "iproute2",
    "linux-image-cloud-amd64",
    "initramfs-tools",
)
FILES = rootfs.FILES / "debian"
# A 3 GiB disk, as a user's image might be; sparse, so only what the root holds takes space.
LAYOUT = (disk.Partition("esp", disk.ESP_TYPE, 128), disk.Partition("root", disk.LINUX_TYPE, 2942))
# Everything besides the recipe that decides the image's bytes: this builder, its helpers, its files.
_HERE = Path(__file__).parent
BUILDER = (
    Path(__file__),
    Path(disk.__file__),
    Path(buildlog.__file__),
    Path(rootfs.__file__),
    Path(kernel.__file__),
)
_PUBLIC_KEY = re.compile(
    r"(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+@openssh\.com) [A-Za-z0-9+/]+=*( .*)?"
)


@dataclass(frozen=True)
class DebianImage:
    """A built Debian image in the cache; `private_key` is set when hil generated the baked-in key."""

    disk: Path
    variant: str
    private_key: Path | None


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a Debian image: hashed into its cache key."""

    variant: str
    packages: tuple[Package, ...]
    root_password: str | None  # None: root's password is locked
    authorized_key: str | None  # None with the key variant: hil generates a key pair

    @property
    def include(self) -> list[str]:
        """The packages mmdebstrap installs beyond Debian's defaults."""
        return [p for p in PACKAGES if not (self.variant == "no-sshd" and p == "openssh-server")]

    def cache_key(self) -> str:
        """Hash of the recipe and the builder's code and files."""
        packages = [f"{p.name}={p.version}" for p in self.packages]
        record = [SUITE, SOURCES, self.variant, packages, self.root_password, self.authorized_key]
        return content_key([*BUILDER, *files_below(FILES)], record)


def files_below(directory: Path) -> list[Path]:
    """Every file under `directory`, for a cache key."""
    return [p for p in directory.rglob("*") if p.is_file()]


def content_key(sources: Iterable[Path], record: Sequence[object]) -> str:
    """A cache key: the hash of a builder's code and files (`sources`, all under this folder) and of its
    recipe (`record`, anything JSON can write)."""
    sha = hashlib.sha256()
    for path in sorted(sources):
        sha.update(f"{path.relative_to(_HERE)}\0".encode() + path.read_bytes() + b"\0")
    sha.update(json.dumps(record).encode())
    return sha.hexdigest()[:16]


def recipe(variant: str, authorized_key: Path | None = None, root_password: str | None = None) -> Recipe:
    """Check the arguments for a variant and turn them into a Recipe (refuses what a variant ignores);
    its package versions are left empty for the caller to resolve."""
    if variant not in VARIANTS:
        raise ImageError(f"unknown Debian image variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if variant == "key":
        if root_password is not None:
            raise ImageError("the key variant locks root's password; --root-password has no meaning there")
        return Recipe(variant, (), None, _public_key(authorized_key) if authorized_key else None)
    if authorized_key is not None:
        raise ImageError(
            f"the {variant} variant bakes in no SSH key; use --variant key with --authorized-key"
        )
    return Recipe(variant, (), root_password_for(root_password), None)


def root_password_for(given: str | None) -> str:
    """Root's console password: `given`, else $HIL_DEBIAN_ROOT_PASSWORD, else DEFAULT_ROOT_PASSWORD."""
    password = given or os.environ.get(ROOT_PASSWORD_ENV) or DEFAULT_ROOT_PASSWORD
    if "\n" in password:
        raise ImageError("the root password must be one line")
    return password


def _public_key(path: Path) -> str:
    try:
        line = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageError(f"cannot read the authorized key {path}: {exc}") from None
    if not _PUBLIC_KEY.fullmatch(line):
        raise ImageError(
            f"{path} is not one OpenSSH public key line (ssh-ed25519 AAAA...); pass the .pub file"
        )
    return line


def build_debian(
    variant: str = "password",
    *,
    authorized_key: Path | None = None,
    root_password: str | None = None,
    cache: Path | None = None,
    log: Callable[[str], None] = print,
) -> DebianImage:
    """Build the plain Debian 12 image for a variant, or return the cached one at once."""
    checked = recipe(variant, authorized_key, root_password)  # refuse bad arguments before asking apt
    wanted = dataclasses.replace(checked, packages=tuple(resolve(checked.include)))
    final = images_dir(cache) / f"debian12-{wanted.cache_key()}"
    image = _image(final, wanted)
    if final.is_dir():
        log(f"cached: {image.disk}")
        return image
    preflight("the Debian image")
    build_once(
        final,
        f"the plain Debian 12 image ({variant})",
        lambda tmp, blog: _build(tmp / "work", _image(tmp, wanted), wanted, blog),
        {"variant": variant, "packages": {p.name: p.version for p in wanted.packages}},
        log,
    )
    return image


def build_once(
    final: Path,
    what: str,
    build: Callable[[Path, buildlog.BuildLog], None],
    info: Mapping[str, object],
    log: Callable[[str], None],
) -> None:
    """Make the cache entry `final` with `build(directory, build_log)`, one builder at a time: in a
    directory renamed to `final` once complete, with `image.json` (`info`) and the build log in it. A
    failure is one line naming the log, which stays beside the cache entry."""
    with one_builder(final) as needed:
        if needed:
            _build_entry(final, what, build, info, log)
        else:
            log(f"built meanwhile by another process: {final}")


def _build_entry(
    final: Path,
    what: str,
    build: Callable[[Path, buildlog.BuildLog], None],
    info: Mapping[str, object],
    log: Callable[[str], None],
) -> None:
    started = time.monotonic()
    log(f"building {what} in {final.parent}")
    # The log lives outside the build directory, so it outlives a failed build; per process, so two
    # concurrent builds of the same image (xdist workers) each keep their own.
    build_log = final.parent / f"{final.name}-{os.getpid()}.build.log"
    with buildlog.BuildLog(build_log, log) as blog, building(final) as tmp:
        with blog.failures_named(f"building {what}"):
            build(tmp, blog)
        (tmp / "image.json").write_text(json.dumps(info, indent=2) + "\n")
        blog.move_into(tmp / "build.log")
    log(f"built {what} in {time.monotonic() - started:.1f} s: {final}")


def _image(directory: Path, wanted: Recipe) -> DebianImage:
    path = directory / f"debian-12-{wanted.variant}.img"
    generated = wanted.variant == "key" and wanted.authorized_key is None
    return DebianImage(path, wanted.variant, path.with_name(f"{path.name}.id_ed25519") if generated else None)


def preflight(what: str, extra_tools: tuple[str, ...] = ()) -> None:
    """Refuse a build that could not finish: not root, or a host program missing (named with its package)."""
    if os.geteuid() != 0:
        raise ImageError(
            f"building {what} needs root: mmdebstrap installs packages in a chroot and "
            "mkfs.ext4 -d copies file owners"
        )
    for tool in ("mmdebstrap", "unshare", "mkfs.ext4", "mkfs.vfat", "mcopy", "sfdisk", *extra_tools):
        tools.require(tool)
    tools.require_grub_efi()


def _build(work: Path, target: DebianImage, wanted: Recipe, blog: buildlog.BuildLog) -> None:
    """Make the root tree, the ESP and the root filesystem in `work`, then the disk `target` names."""
    work.mkdir()
    root = work / "root"
    public_key = wanted.authorized_key
    if target.private_key is not None:
        public_key = write_key_pair(target.private_key, "hil-debian")
    mmdebstrap(root, wanted.include, wanted.root_password, blog)
    configure(root, public_key)
    blog.phase("root tree configured: hostname debian, systemd-networkd DHCP, empty machine-id")

    disk.grub_efi(work / "BOOTX64.EFI", FILES / "grub.cfg")
    boot = {"EFI/BOOT/BOOTX64.EFI": work / "BOOTX64.EFI", "vmlinuz": kernel.vmlinuz(root)}
    boot["initrd.img"] = kernel.initrd(root)
    disk.mkfs_vfat(work / "esp.img", LAYOUT[0].size_mib, "ESP", boot)
    blog.phase("ESP made: standalone GRUB, kernel and initrd")
    disk.mkfs_ext4(work / "root.img", LAYOUT[1].size_mib, "debian-root", root)
    blog.phase("root filesystem made (mkfs.ext4 -d)")
    disk.assemble(target.disk, {"esp": work / "esp.img", "root": work / "root.img"}, LAYOUT)
    blog.phase(f"disk written: {target.disk.name}")
    shutil.rmtree(work)


def mmdebstrap(
    root: Path,
    include: Sequence[str],
    root_password: str | None,
    blog: buildlog.BuildLog,
    *,
    options: Sequence[str] = (),
) -> None:
    """Install Debian with `include` into `root`, systemd-networkd and -resolved enabled, root's password
    set (None: locked); `options` are more of mmdebstrap's. mmdebstrap runs in its root mode, in a mount
    and PID namespace of its own, so its /proc and /sys mounts and its processes end with it however the
    build ends."""
    blog.phase(f"mmdebstrap {SUITE}: {', '.join(include)}")
    hooks = ['chroot "$1" systemctl enable systemd-networkd.service systemd-resolved.service']
    env = dict(os.environ)
    if root_password is None:
        hooks.append('chroot "$1" passwd --lock root')
    else:  # by environment, so the password never shows in a process listing
        hooks.append(f'printf "root:%s\\n" "${ROOT_PASSWORD_ENV}" | chroot "$1" chpasswd')
        env[ROOT_PASSWORD_ENV] = root_password
    unshare = tools.require("unshare")
    namespace = [unshare, "--mount", "--propagation=private", "--pid", "--fork", "--kill-child"]
    blog.run(
        [*namespace, tools.require("mmdebstrap"), "--mode=root", "--format=directory", *options,
         f"--include={','.join(include)}", *(f"--customize-hook={hook}" for hook in hooks),
         SUITE, str(root), *SOURCES],
        env=env, name="mmdebstrap",
    )  # fmt: skip


def configure(root: Path, public_key: str | None) -> None:
    """What a user sets up by hand: hostname, fstab, DHCP; then an SSH key when one is baked in."""
    rootfs.copy_files(FILES / "root", root)
    # Empty: systemd makes a fresh machine-id on first boot, so every board is a new machine.
    (root / "etc" / "machine-id").write_text("")
    resolv = root / "etc" / "resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")  # systemd-resolved in stub mode
    if public_key is not None:
        ssh = root / "root" / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)  # Debian's root tree may hold it already, empty
        ssh.chmod(0o700)
        keys = ssh / "authorized_keys"
        keys.write_text(public_key + "\n")
        keys.chmod(0o600)
