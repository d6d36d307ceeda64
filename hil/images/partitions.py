"""The partition table (MBR or GPT) at the start of a disk image: where each partition lies, which one
boots, and the PARTUUIDs the OS will see."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ImageError
from hil.images.read import open_image

SECTOR = 512
# A partition table (MBR or GPT with its 128 entries) lies within the first MiB of any image we take.
HEAD = 1 << 20
_MBR_FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, 0xEF}
_GPT_FAT_TYPES = {
    uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),  # EFI system partition
    uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"),  # Microsoft basic data (FAT boot partitions)
}


@dataclass(frozen=True)
class Partition:
    """One partition of a disk image, in bytes."""

    number: int
    offset: int
    size: int
    fat: bool
    uuid: str = ""  # the PARTUUID Linux shows: the GPT entry's GUID, or MBR `<disk signature>-<number>`


def partitions(head: bytes) -> list[Partition]:
    """The partitions described by the MBR or GPT at the start of a disk (`head` = its first MiB)."""
    if len(head) < 2 * SECTOR or head[510:512] != b"\x55\xaa":
        return []
    entries = [struct.unpack_from("<4xB3xII", head, 446 + 16 * i) for i in range(4)]
    if any(kind == 0xEE for kind, _, _ in entries):
        return _gpt_partitions(head)
    (signature,) = struct.unpack_from("<I", head, 440)
    return [
        Partition(
            i + 1, start * SECTOR, count * SECTOR, kind in _MBR_FAT_TYPES, f"{signature:08x}-{i + 1:02x}"
        )
        for i, (kind, start, count) in enumerate(entries)
        if kind and count
    ]


def _gpt_partitions(head: bytes) -> list[Partition]:
    if head[SECTOR : SECTOR + 8] != b"EFI PART":
        return []
    entries_lba, count, entry_size = struct.unpack_from("<QII", head, SECTOR + 72)
    found = []
    for i in range(count):
        at = entries_lba * SECTOR + i * entry_size
        if at + 48 > len(head):
            break
        kind = uuid.UUID(bytes_le=head[at : at + 16])
        first, last = struct.unpack_from("<QQ", head, at + 32)
        if kind.int:
            unique = str(uuid.UUID(bytes_le=head[at + 16 : at + 32]))
            size = (last - first + 1) * SECTOR
            found.append(Partition(i + 1, first * SECTOR, size, kind in _GPT_FAT_TYPES, unique))
    return found


def partition_uuids(path: Path) -> set[str]:
    """The PARTUUIDs of an image's partitions, as the OS booted from it reports them."""
    with open_image(path) as stream:
        return {p.uuid for p in partitions(stream.read(HEAD))}


def boot_partition(head: bytes, where: Path) -> Partition:
    """The first FAT partition (the boot partition) of a disk; ImageError when there is none."""
    for partition in partitions(head):
        if partition.fat:
            return partition
    raise ImageError(f"{where} has no FAT boot partition in its partition table")
