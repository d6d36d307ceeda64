"""Running the host programs the image builder needs, with errors that name the apt package."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from hil.errors import ImageError, ToolMissing

# The Debian package that ships each program, so a missing tool names what to install.
APT_PACKAGE = {
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "sfdisk": "fdisk",
    "grub-mkstandalone": "grub-common",
    "mmdebstrap": "mmdebstrap",
    "unshare": "util-linux",
    "chroot": "coreutils",
    "grub-editenv": "grub-common",
    "openssl": "openssl",
    "rauc": "rauc",
    "mksquashfs": "squashfs-tools",
}

# grub-mkstandalone needs the EFI modules as well as the program itself: the host's, for x86-64.
GRUB_EFI_DIR = Path("/usr/lib/grub/x86_64-efi")


def require(tool: str) -> str:
    """The full path of a host program, or ToolMissing naming the apt package that provides it."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        package = APT_PACKAGE.get(tool, tool)
        raise ToolMissing(f"the image builder needs `{tool}`: install it with `apt-get install {package}`")
    return path


def require_grub_efi(modules_dir: Path = GRUB_EFI_DIR) -> None:
    """Raise ToolMissing unless grub-mkstandalone and GRUB's EFI modules in `modules_dir` are there."""
    require("grub-mkstandalone")
    if not (modules_dir / "linux.mod").exists():
        raise ToolMissing(
            f"the image builder needs GRUB's EFI modules in {modules_dir}: "
            "install them with `apt-get install grub-efi-amd64-bin`"
        )


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> str:
    """Run a host program and return its stdout; ImageError with its stderr when it fails."""
    args = [str(a) for a in argv]
    args[0] = require(args[0])
    proc = subprocess.run(args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise ImageError(f"`{' '.join(args)}` failed with exit {proc.returncode}: {detail}")
    return proc.stdout
