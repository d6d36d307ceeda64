"""Filesystem images and the GPT disk, made without mounts or loop devices."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ImageError
from hil.images.builders.tools import GRUB_EFI_DIR, require_grub_efi, run

MIB = 1024 * 1024
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
# What a grub.cfg needs that loads a kernel and initrd from a FAT or ext4 partition on a serial console,
# picking the partition from a GRUB environment block (loadenv, test, regexp).
GRUB_MODULES = "part_gpt fat ext2 search search_label linux normal echo serial terminal loadenv test regexp"


@dataclass(frozen=True)
class Partition:
    """One GPT partition: its label (GPT name), type and size."""

    name: str
    type_guid: str
    size_mib: int


# As on balenaOS: boot, two root slots, state that survives updates, user data.
LAYOUT = (
    Partition("boot", ESP_TYPE, 32),
    Partition("rootA", LINUX_TYPE, 64),
    Partition("rootB", LINUX_TYPE, 64),
    Partition("state", LINUX_TYPE, 16),
    Partition("data", LINUX_TYPE, 64),
)


def size_mib(name: str) -> int:
    """The size of the LAYOUT partition with this label."""
    return next(p.size_mib for p in LAYOUT if p.name == name)


def mkfs_ext4(
    image: Path, size_mib: int, label: str, source: Path | None = None, *, block_size: int | None = None
) -> None:
    """An ext4 image file, filled from `source` when given (owners are copied: build as root); mke2fs
    picks the block size from the size (1 KiB below 512 MiB) unless `block_size` is given."""
    populate: list[str | Path] = ["-d", source] if source else []
    blocks = ["-b", str(block_size)] if block_size else []
    run(["mkfs.ext4", "-q", "-F", "-L", label, *blocks, *populate, image, f"{size_mib}M"])


def mkfs_vfat(image: Path, size_mib: int, label: str, files: dict[str, Path]) -> None:
    """A FAT image file holding `files` (destination path inside -> source file), placed with mtools."""
    run(["mkfs.vfat", "-C", "-n", label, image, str(size_mib * 1024)])
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    dirs = sorted({str(p) for dest in files for p in Path(dest).parents if str(p) != "."})
    for directory in dirs:
        run(["mmd", "-i", image, f"::/{directory}"], env=env)
    for dest, source in files.items():
        run(["mcopy", "-i", image, source, f"::/{dest}"], env=env)


def _copy_sparse(source: Path, disk: Path, offset: int) -> None:
    """Write `source` into `disk` at `offset`, skipping all-zero blocks (dd conv=notrunc,sparse)."""
    with source.open("rb") as src, disk.open("r+b") as dst:
        pos = offset
        while block := src.read(MIB):
            if block.count(0) != len(block):
                dst.seek(pos)
                dst.write(block)
            pos += len(block)


def partition_table(disk: Path) -> list[dict]:
    """The partitions `sfdisk --json` reports (start and size in 512-byte sectors, name)."""
    return json.loads(run(["sfdisk", "--json", disk]))["partitiontable"]["partitions"]


def grub_efi(
    out: Path, grub_cfg: Path, modules_dir: Path = GRUB_EFI_DIR, *, extra_modules: tuple[str, ...] = ()
) -> None:
    """A standalone GRUB EFI binary with `grub_cfg` built in, for the platform of `modules_dir`
    (a GRUB module directory such as /usr/lib/grub/x86_64-efi: its name is grub-mkstandalone's target),
    with GRUB_MODULES and the `extra_modules` a grub.cfg needs beyond them."""
    require_grub_efi(modules_dir)
    # Only the modules grub.cfg uses, built into the core image: 1 MB instead of 10 for the firmware to load.
    modules = " ".join([GRUB_MODULES, *extra_modules])
    run(
        [
            "grub-mkstandalone",
            "-O",
            modules_dir.name,
            "--directory",
            modules_dir,
            f"--modules={modules}",
            f"--install-modules={modules}",
            "--locales=",
            "--fonts=",
            "--themes=",
            "-o",
            out,
            f"boot/grub/grub.cfg={grub_cfg}",
        ]
    )


def assemble(disk: Path, images: dict[str, Path], layout: tuple[Partition, ...] = LAYOUT) -> None:
    """Lay out `layout` on a new sparse disk file and write each partition's image into place; a
    partition `images` does not name stays empty (zeros), as a slot nothing was installed in yet."""
    unknown = sorted(set(images) - {p.name for p in layout})
    if unknown:
        raise ImageError(f"no partition in the layout is named {', '.join(unknown)}")
    total_mib = 1 + sum(p.size_mib for p in layout) + 1  # GPT header before, backup GPT after
    with disk.open("wb") as f:
        f.truncate(total_mib * MIB)
    script = "label: gpt\n" + "".join(
        f"size={p.size_mib}MiB, type={p.type_guid}, name={p.name}\n" for p in layout
    )
    run(["sfdisk", "--quiet", disk], stdin=script)
    for entry, part in zip(partition_table(disk), layout, strict=True):
        if entry["name"] != part.name or entry["size"] != part.size_mib * 2048:
            raise ImageError(f"sfdisk laid out {entry} where {part} was asked for")
        image = images.get(part.name)
        if image is None:
            continue
        if image.stat().st_size > part.size_mib * MIB:
            raise ImageError(f"{image} does not fit partition {part.name} ({part.size_mib} MiB)")
        _copy_sparse(image, disk, entry["start"] * 512)
