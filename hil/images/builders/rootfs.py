"""The root filesystem and initramfs trees: busybox, dropbear, chrony, hil's scripts, per variant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hil.errors import ImageError
from hil.images.arch import Arch
from hil.images.builders import bootenv, elf, kernel
from hil.images.builders.tools import run

FILES = Path(__file__).parent / "files"

# dropbear and chrony link against these; their ELF files name the ones actually needed (elf.py).
LIBRARY_PACKAGES = (
    "libc6",
    "libcrypt1",
    "libtomcrypt1",
    "libtommath1",
    "zlib1g",
    "libcap2",
    "libedit2",
    "libbsd0",
    "libmd0",
    "libtinfo6",
    "libgnutls30",
    "libnettle8",
    "libhogweed6",
    "libgmp10",
    "libseccomp2",
    "libp11-kit0",
    "libffi8",
    "libidn2-0",
    "libunistring2",
    "libtasn1-6",
    # dnsmasq (the local resolver) and openssl (the HTTPS time client)
    "libssl3",
    "libdbus-1-3",
    "libsystemd0",
    "libgcrypt20",
    "libgpg-error0",
    "liblzma5",
    "libzstd1",
    "liblz4-1",
    "libnetfilter-conntrack3",
    "libnfnetlink0",
    "libnftables1",
    "libnftnl11",
    "libmnl0",
    "libxtables12",
    "libjansson4",
)
PACKAGES = (
    "busybox-static",
    "dropbear-bin",
    "openssh-sftp-server",
    "chrony",
    "dnsmasq-base",
    "openssl",
    *LIBRARY_PACKAGES,
)
DAEMONS = {
    "dropbear-bin": ("usr/sbin/dropbear", "usr/bin/dropbearkey"),
    "openssh-sftp-server": ("usr/lib/openssh/sftp-server",),
    "chrony": ("usr/sbin/chronyd", "usr/bin/chronyc"),
    "dnsmasq-base": ("usr/sbin/dnsmasq",),
    "openssl": ("usr/bin/openssl",),
}

# inittab services (files/rootfs/usr/lib/hil/svc/NAME.run) and what each variant leaves out.
SERVICES = ("acpid", "dropbear", "chronyd", "dhcp", "dnsmasq")
VARIANT_OMITS = {
    "healthy": (),
    "broken-init": (),
    "broken-kernel": (),
    "broken-health": ("dropbear",),
    "no-dhcp": ("dhcp",),
    "no-chrony": ("chronyd",),
}
VARIANTS = tuple(VARIANT_OMITS)

BROKEN_INIT = """#!/bin/sh
echo "hil: broken-init variant: init exits at once" >/dev/console
exit 1
"""


def copy_files(src: Path, root: Path) -> None:
    """Copy a files/ subtree; scripts become executable whatever modes the installed package kept."""
    for path in sorted(src.rglob("*")):
        dest = root / path.relative_to(src)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink():
            dest.unlink()  # a busybox applet link: replace it, never write through it
        shutil.copyfile(path, dest)
        dest.chmod(0o755 if path.read_bytes()[:2] == b"#!" else 0o644)


def packages(arch: Arch) -> tuple[str, ...]:
    """The Debian packages an image for `arch` is made from."""
    return (arch.kernel_metapackage, *PACKAGES)


def _install_busybox(busybox_tree: Path, root: Path, applets: list[str]) -> None:
    """The static busybox and a symlink for each of its applets."""
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox_tree / "bin" / "busybox", root / "bin" / "busybox")
    for applet in applets:
        link = root / applet
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists() and not link.is_symlink():
            link.symlink_to("/bin/busybox")


def applet_list(host_busybox: Path) -> list[str]:
    """Busybox's applet paths, from a busybox this host can run (the same Debian build on every arch)."""
    return run([host_busybox, "--list-full"]).split()


def _install_dynamic(trees: dict[str, Path], root: Path, arch: Arch) -> None:
    """The daemons and every shared library they need, found in the unpacked packages."""
    libdir = f"lib/{arch.triplet}"
    found = {
        lib.name: lib
        for tree in trees.values()
        for directory in (tree / libdir, tree / "usr" / libdir)
        if directory.is_dir()
        for lib in directory.iterdir()
    }
    (root / libdir).mkdir(parents=True, exist_ok=True)
    todo = []
    for package, binaries in DAEMONS.items():
        for rel in binaries:
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(trees[package] / rel, dest)
            todo += [(rel, name) for name in elf.needed(dest)]
    while todo:
        user, name = todo.pop()
        dest = root / libdir / name
        if dest.exists():
            continue
        if name not in found:
            raise ImageError(f"{user} needs {name}, which none of {LIBRARY_PACKAGES} provides")
        shutil.copyfile(found[name].resolve(), dest)
        todo += [(name, dep) for dep in elf.needed(dest)]
    # The loader sits where binaries name it (PT_INTERP), as a link into the library directory.
    loader = Path(arch.interpreter).name
    shutil.copyfile(found[loader].resolve(), root / libdir / loader)
    link = root / arch.interpreter
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(f"/{libdir}/{loader}")
    for lib in (root / libdir).iterdir():
        lib.chmod(0o755)


def _inittab(variant: str, console: str) -> str:
    lines = ["::sysinit:/etc/init.d/rcS"]
    # `.run` keeps the wrapper's process name apart from the daemon's, so pidof finds only the daemon.
    lines += [f"::respawn:/usr/lib/hil/svc/{s}.run" for s in SERVICES if s not in VARIANT_OMITS[variant]]
    lines += [
        f"{console}::respawn:/sbin/getty -L 115200 {console} vt100",
        "::ctrlaltdel:/sbin/reboot",
        "::shutdown:/usr/lib/hil/shutdown",
    ]
    return "\n".join(lines) + "\n"


def os_release(version: str, device_type: str) -> str:
    """The /etc/os-release of the image."""
    return (
        'NAME="hil reference OS"\nID=hil-reference\n'
        f'VERSION_ID={version}\nPRETTY_NAME="hil reference OS {version}"\nSLUG={device_type}\n'
    )


def build_rootfs_tree(
    trees: dict[str, Path], root: Path, version: str, variant: str, arch: Arch, applets: list[str]
) -> None:
    """Fill `root` with the read-only root filesystem of one version and variant (/boot empty: the
    builder puts the slot's kernel and initramfs there)."""
    _install_busybox(trees["busybox-static"], root, applets)
    _install_dynamic(trees, root, arch)
    copy_files(FILES / "common", root)
    copy_files(FILES / "rootfs", root)
    for rel in (
        "boot",
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "mnt/boot",
        "mnt/state",
        "mnt/data",
        "root",
        "var/lib",
    ):
        (root / rel).mkdir(parents=True, exist_ok=True)
    (root / "root").chmod(0o700)
    (root / "etc" / "shadow").chmod(0o600)
    # The root is mounted read-only: what must change lives on /run (tmpfs) or the state partition.
    for link, target in {
        "etc/resolv.conf": "/run/resolv.conf",
        "var/log": "/run/log",
        "var/run": "/run",
        "var/lib/chrony": "/mnt/state/chrony",
        "root/.ssh": "/run/ssh",
        # Where dropbear looks for the SFTP server (SFTP uploads, and scp in OpenSSH 9).
        "usr/lib/sftp-server": "/usr/lib/openssh/sftp-server",
    }.items():
        (root / link).symlink_to(target)
    (root / "etc" / "os-release").write_text(os_release(version, arch.device_type))
    (root / "etc" / "inittab").write_text(_inittab(variant, arch.console))
    if variant == "broken-init":
        (root / "sbin" / "init").unlink()
        (root / "sbin" / "init").write_text(BROKEN_INIT)
        (root / "sbin" / "init").chmod(0o755)


def build_initramfs_tree(
    trees: dict[str, Path], root: Path, arch: Arch, applets: list[str], *, init: Path = FILES / "initramfs"
) -> None:
    """Fill `root` with an initramfs: busybox, the boot-environment logic, the kernel modules, and the
    files under `init` (its /init: the A/B root switch, or the flasher's installer)."""
    _install_busybox(trees["busybox-static"], root, applets)
    copy_files(FILES / "common", root)
    copy_files(init, root)
    for rel in ("dev", "proc", "sys", "mnt/boot", "mnt/state", "newroot", "lib/modules"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    order = []
    for module in kernel.load_order(kernel.modules_dir(kernel.package_tree(trees)), arch.modules):
        shutil.copyfile(module, root / "lib" / "modules" / module.name)
        order.append(f"/lib/modules/{module.name}")
    (root / "lib" / "modules" / "load-order").write_text("\n".join(order) + "\n")


def boot_files(version: str, config: dict, device_type: str) -> dict[str, str]:
    """The small text files of the boot partition, by name."""
    return {
        "config.json": json.dumps(config, indent=2) + "\n",
        # The slug only: the OS version lives in each root's os-release, where the OS keeps it.
        "device-type.json": json.dumps({"slug": device_type}) + "\n",
        "bootenv": bootenv.BootEnv().render(),
    }
