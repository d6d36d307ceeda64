"""Builds small partitioned disk images (GPT or MBR, FAT boot partition) for hil's own tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

MIB = 1 << 20


def make_disk(
    path: Path, *, boot_files: dict[str, bytes], label: str = "gpt", size_mib: int = 8, boot_mib: int = 4
) -> Path:
    """A raw disk image: a FAT boot partition at 1 MiB holding `boot_files`, then a Linux partition."""
    with open(path, "wb") as f:
        f.truncate(size_mib * MIB)
    boot_type = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" if label == "gpt" else "c"
    linux_type = "0FC63DAF-8483-4772-8E79-3D69D8477DE4" if label == "gpt" else "83"
    table = f"label: {label}\nstart=2048, size={boot_mib * 2048}, type={boot_type}\ntype={linux_type}\n"
    subprocess.run(["sfdisk", "--quiet", str(path)], input=table.encode(), check=True)
    boot = path.with_suffix(".vfat")
    subprocess.run(["mkfs.vfat", "-C", str(boot), str(boot_mib * 1024)], check=True, capture_output=True)
    for name, data in boot_files.items():
        source = path.with_name(f"boot-file-{name}")
        source.write_bytes(data)
        mtools_env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
        subprocess.run(["mcopy", "-i", str(boot), str(source), f"::/{name}"], check=True, env=mtools_env)
        source.unlink()
    with open(path, "r+b") as disk:
        disk.seek(MIB)
        disk.write(boot.read_bytes())
    boot.unlink()
    # Some data in the root partition, so the image is not all zeros past the boot partition.
    with open(path, "r+b") as disk:
        disk.seek((boot_mib + 2) * MIB)
        disk.write(os.urandom(64 * 1024))
    return path
