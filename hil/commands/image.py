"""`hil image`: build the reference image, a plain Debian image or a RAUC image, inspect an image."""

from __future__ import annotations

# Start-up speed: each command imports what it runs inside its function, so `hil --help` loads none of it.
import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `hil image build-reference | build-debian | build-rauc | info`."""
    image = subparsers.add_parser(
        "image", help="build the reference, a plain Debian or a RAUC image, inspect images"
    )
    sub = image.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    build = sub.add_parser(
        "build-reference",
        help="build hil's reference image from Debian packages (cached by content hash)",
        description="Build the reference image (GPT: boot, rootA, rootB, state, data) from Debian packages, "
        "without mounts or loop devices. Unchanged inputs are a cache hit. Prints the disk path.",
    )
    build.add_argument("--version", default="1.0.0", help="OS version written into /etc/os-release (1.0.0)")
    build.add_argument(
        "--variant", default="healthy",
        help="healthy; flasher (an installer that writes the healthy image onto a board's internal disk); "
        "or a deliberately broken variant for tests",
    )  # fmt: skip
    build.add_argument(
        "--arch", default="x86_64", help="x86_64 (device type qemux86-64) or aarch64 (generic-aarch64)"
    )
    build.set_defaults(func=_build)
    _add_debian_parser(sub)
    _add_rauc_parser(sub)
    info = sub.add_parser("info", help="print an image's device type and version")
    info.add_argument("image", type=Path)
    info.set_defaults(func=_info)


def _add_debian_parser(sub: argparse._SubParsersAction) -> None:
    debian = sub.add_parser(
        "build-debian",
        help="build a plain Debian 12 image, an OS hil did not shape (cached by content hash)",
        description="Build a plain Debian 12 (bookworm) amd64 image with mmdebstrap: systemd, openssh, "
        "chrony, systemd-networkd and -resolved, Debian's cloud kernel, a standalone GRUB EFI on the ESP. "
        "Needs root; no mounts or loop devices. Prints the disk path, then the private key's path when hil "
        "generated the key.",
    )
    debian.add_argument(
        "--variant", default="password",
        help="password (default): root logs in on the console with a password, no key baked in; key: root's "
        "password locked, an SSH key in /root/.ssh/authorized_keys; no-sshd: password, no openssh-server",
    )  # fmt: skip
    debian.add_argument(
        "--authorized-key", type=Path, metavar="PUB",
        help="public key file for --variant key (default: generate a key pair beside the disk)",
    )  # fmt: skip
    debian.add_argument(
        "--root-password", metavar="PASSWORD",
        help="root's console password (default: $HIL_DEBIAN_ROOT_PASSWORD, else hil-debian)",
    )  # fmt: skip
    debian.set_defaults(func=_build_debian)


_RAUC_DESCRIPTION = (
    "Build a Debian 12 amd64 image whose updates are RAUC's, an A/B updater hil did not write: GPT esp (a "
    "standalone GRUB that picks the slot from RAUC's grubenv), rootA (--version), rootB (empty), data "
    "(/data); systemd's boot-complete health check marks a booted slot good, or bad and reboots. Beside the "
    "disk, the next version's bundles, one per role of the update suite (good, never-boots, kernel-panics, "
    "health-fails, other-compatible, other-key, truncated), and a bundles file naming them; they are signed "
    "with keys made for the image and kept beside it in the cache. Root logs in on the console with a "
    "password ($HIL_DEBIAN_ROOT_PASSWORD, else hil-debian). Needs root; no mounts or loop devices. Prints "
    "the disk path, then the bundles file's path."
)


def _add_rauc_parser(sub: argparse._SubParsersAction) -> None:
    what = "build a Debian 12 image updated by RAUC, with its test bundles (cached by content hash)"
    rauc = sub.add_parser("build-rauc", help=what, description=_RAUC_DESCRIPTION)
    rauc.set_defaults(func=_build_rauc)
    version = "the OS version in slot A, numbers joined by dots (1.0.0); the bundles carry the next (1.0.1)"
    rauc.add_argument("--version", default="1.0.0", help=version)


def _build_rauc(args: argparse.Namespace) -> int:
    from hil.images.builders.rauc import build_rauc

    built = build_rauc(version=args.version, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(built.disk)
    print(built.bundles_file)
    return 0


def _build_debian(args: argparse.Namespace) -> int:
    from hil.images.builders.debian import build_debian

    # Progress on stderr, so stdout is only the paths a script captures.
    built = build_debian(
        args.variant,
        authorized_key=args.authorized_key,
        root_password=args.root_password,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(built.disk)
    if built.private_key is not None:
        print(built.private_key)
    return 0


def _build(args: argparse.Namespace) -> int:
    from hil.images.builders.reference import build_reference

    built = build_reference(args.version, args.variant, arch=args.arch)
    print(built.disk)
    return 0


def _info(args: argparse.Namespace) -> int:
    from hil.errors import ImageError
    from hil.images.device_type import read_info

    if not args.image.is_file():
        raise ImageError(f"image {args.image} does not exist")
    info = read_info(args.image)
    print(f"device type: {info.device_type or 'unknown'}\nversion:     {info.version or 'unknown'}")
    return 0
