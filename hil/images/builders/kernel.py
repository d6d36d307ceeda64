"""The kernel and the modules the initramfs loads, in dependency order (read from each module's modinfo)."""

from __future__ import annotations

import re
from pathlib import Path

from hil.errors import ImageError

_DEPENDS = re.compile(rb"(?:^|\0)depends=([^\0]*)\0")


def package_tree(trees: dict[str, Path]) -> Path:
    """The unpacked linux-image package among the image's unpacked packages."""
    return next(tree for name, tree in trees.items() if name.startswith("linux-image-"))


def modules_dir(kernel_tree: Path) -> Path:
    """The one lib/modules/<release> directory of an unpacked linux-image package."""
    found = sorted((kernel_tree / "lib" / "modules").glob("*/kernel"))
    if len(found) != 1:
        raise ImageError(f"expected one kernel module tree under {kernel_tree}/lib/modules, found {found}")
    return found[0].parent


def vmlinuz(kernel_tree: Path) -> Path:
    """The kernel binary of an unpacked linux-image package (or of a root tree it is installed in)."""
    return _one_in_boot(kernel_tree, "vmlinuz-*", "vmlinuz")


def initrd(tree: Path) -> Path:
    """The initramfs image that Debian's initramfs-tools made in a root tree's /boot."""
    return _one_in_boot(tree, "initrd.img-*", "initrd.img (initramfs-tools)")


def _one_in_boot(tree: Path, pattern: str, what: str) -> Path:
    found = sorted((tree / "boot").glob(pattern))
    if len(found) != 1:
        raise ImageError(f"expected one {what} in {tree}/boot, found {found}")
    return found[0]


def load_order(moddir: Path, wanted: tuple[str, ...]) -> list[Path]:
    """Module files for `wanted` and everything they depend on, each after its dependencies."""
    index = {p.name.split(".ko")[0].replace("-", "_"): p for p in moddir.rglob("*.ko*")}
    builtin = {
        Path(line).name.split(".ko")[0].replace("-", "_")
        for line in (moddir / "modules.builtin").read_text().split()
    }
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in index:
            raise ImageError(f"kernel module {name} is neither in {moddir} nor built in")
        path = index[name]
        if path.suffix != ".ko":
            raise ImageError(f"{path} is compressed; busybox insmod needs uncompressed modules")
        match = _DEPENDS.search(path.read_bytes())
        for dep in match.group(1).decode().split(",") if match else []:
            if dep:
                visit(dep.replace("-", "_"))
        order.append(path)

    for name in wanted:
        visit(name)
    return order
