"""The root filesystem and initramfs trees: busybox, dropbear, chrony, hil's scripts, per variant."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from hil.errors import ImageError
from hil.images import bootenv, kernel
from hil.images.debs import KERNEL_METAPACKAGE
from hil.images.tools import run

FILES = Path(__file__).parent / "files"
DEVICE_TYPE = "qemux86-64"
LIBDIR = "lib/x86_64-linux-gnu"
INTERPRETER = "ld-linux-x86-64.so.2"

# dropbear and chrony link against these; ldd picks the files actually needed from them.
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
    KERNEL_METAPACKAGE,
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


def _install_busybox(busybox_tree: Path, root: Path) -> None:
    """The static busybox and a symlink for each of its applets."""
    binary = busybox_tree / "bin" / "busybox"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, root / "bin" / "busybox")
    for applet in run([binary, "--list-full"]).split():
        link = root / applet
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists() and not link.is_symlink():
            link.symlink_to("/bin/busybox")


def _install_dynamic(trees: dict[str, Path], root: Path) -> None:
    """dropbear and chrony with the shared libraries ldd resolves from the unpacked packages."""
    libdirs = [str(t / d) for t in trees.values() for d in (LIBDIR, f"usr/{LIBDIR}") if (t / d).is_dir()]
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(libdirs)}
    (root / LIBDIR).mkdir(parents=True, exist_ok=True)
    for package, binaries in DAEMONS.items():
        for rel in binaries:
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(trees[package] / rel, dest)
            for line in run(["ldd", trees[package] / rel], env=env).splitlines():
                name, _, target = line.strip().partition(" => ")
                if not target:
                    continue  # the vdso and the interpreter line
                if target.startswith("not found"):
                    raise ImageError(f"{rel} needs {name}, which none of {LIBRARY_PACKAGES} provides")
                lib = Path(target.split(" (")[0])
                shutil.copyfile(lib.resolve(), root / LIBDIR / name)
    shutil.copyfile((trees["libc6"] / LIBDIR / INTERPRETER).resolve(), root / LIBDIR / INTERPRETER)
    (root / "lib64").mkdir(exist_ok=True)
    (root / "lib64" / INTERPRETER).symlink_to(f"/{LIBDIR}/{INTERPRETER}")
    for lib in (root / LIBDIR).iterdir():
        lib.chmod(0o755)


def _inittab(variant: str) -> str:
    lines = ["::sysinit:/etc/init.d/rcS"]
    # `.run` keeps the wrapper's process name apart from the daemon's, so pidof finds only the daemon.
    lines += [f"::respawn:/usr/lib/hil/svc/{s}.run" for s in SERVICES if s not in VARIANT_OMITS[variant]]
    lines += [
        "ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100",
        "::ctrlaltdel:/sbin/reboot",
        "::shutdown:/usr/lib/hil/shutdown",
    ]
    return "\n".join(lines) + "\n"


def os_release(version: str) -> str:
    """The /etc/os-release of the image."""
    return (
        'NAME="hil reference OS"\nID=hil-reference\n'
        f'VERSION_ID={version}\nPRETTY_NAME="hil reference OS {version}"\nSLUG={DEVICE_TYPE}\n'
    )


def build_rootfs_tree(trees: dict[str, Path], root: Path, version: str, variant: str) -> None:
    """Fill `root` with the read-only root filesystem of one version and variant."""
    _install_busybox(trees["busybox-static"], root)
    _install_dynamic(trees, root)
    copy_files(FILES / "common", root)
    copy_files(FILES / "rootfs", root)
    for rel in ("dev", "proc", "sys", "run", "tmp", "mnt/boot", "mnt/state", "mnt/data", "root", "var/lib"):
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
    (root / "etc" / "os-release").write_text(os_release(version))
    (root / "etc" / "inittab").write_text(_inittab(variant))
    if variant == "broken-init":
        (root / "sbin" / "init").unlink()
        (root / "sbin" / "init").write_text(BROKEN_INIT)
        (root / "sbin" / "init").chmod(0o755)


def build_initramfs_tree(trees: dict[str, Path], root: Path) -> None:
    """Fill `root` with the initramfs: busybox, the boot-environment logic and the kernel modules."""
    _install_busybox(trees["busybox-static"], root)
    copy_files(FILES / "common", root)
    copy_files(FILES / "initramfs", root)
    for rel in ("dev", "proc", "sys", "mnt/boot", "mnt/state", "newroot", "lib/modules"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    order = []
    for module in kernel.load_order(kernel.modules_dir(kernel.package_tree(trees))):
        shutil.copyfile(module, root / "lib" / "modules" / module.name)
        order.append(f"/lib/modules/{module.name}")
    (root / "lib" / "modules" / "load-order").write_text("\n".join(order) + "\n")


def boot_files(version: str, config: dict) -> dict[str, str]:
    """The small text files of the boot partition, by name."""
    return {
        "config.json": json.dumps(config, indent=2) + "\n",
        "device-type.json": json.dumps({"slug": DEVICE_TYPE, "version": version}) + "\n",
        "bootenv": bootenv.BootEnv().render(),
    }
