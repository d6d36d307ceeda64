"""`hil image`: build the reference image, inspect an image."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `hil image build-reference | info`."""
    image = subparsers.add_parser("image", help="build the reference image, inspect images")
    sub = image.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    build = sub.add_parser(
        "build-reference",
        help="build hil's reference image from Debian packages (cached by content hash)",
        description="Build the reference image (GPT: boot, rootA, rootB, state, data) from Debian packages, "
        "without mounts or loop devices. Unchanged inputs are a cache hit. Prints the disk path.",
    )
    build.add_argument("--version", default="1.0.0", help="OS version written into /etc/os-release (1.0.0)")
    build.add_argument(
        "--variant", default="healthy", help="healthy, or a deliberately broken variant for tests"
    )
    build.set_defaults(func=_build)
    info = sub.add_parser("info", help="print an image's device type and version")
    info.add_argument("image", type=Path)
    info.set_defaults(func=_info)


def _build(args: argparse.Namespace) -> int:
    from hil.images.reference import build_reference

    built = build_reference(args.version, args.variant)
    print(built.disk)
    return 0


def _info(args: argparse.Namespace) -> int:
    from hil.errors import ImageError
    from hil.image import read_info

    if not args.image.is_file():
        raise ImageError(f"image {args.image} does not exist")
    info = read_info(args.image)
    print(f"device type: {info.device_type or 'unknown'}\nversion:     {info.version or 'unknown'}")
    return 0
