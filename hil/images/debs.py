"""Debian packages for the image: resolve versions with apt, download and unpack them into the cache."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ImageError
from hil.images.tools import run

KERNEL_METAPACKAGE = "linux-image-cloud-amd64"


@dataclass(frozen=True)
class Package:
    """One Debian binary package at the exact version apt would install."""

    name: str
    version: str

    @property
    def stem(self) -> str:
        """A file-name-safe `name_version`."""
        return f"{self.name}_{self.version.replace(':', '%3a')}"


def _show(names: Iterable[str]) -> dict[str, dict[str, str]]:
    """The candidate version's control fields for each package, from `apt-cache show`."""
    names = list(names)
    try:
        text = run(["apt-cache", "show", "--no-all-versions", *names])
    except ImageError as exc:
        raise ImageError(
            f"apt does not know all of {', '.join(names)} (run `apt-get update`?): {exc}"
        ) from exc
    fields: dict[str, dict[str, str]] = {}
    for paragraph in text.strip().split("\n\n"):
        control = dict(
            line.split(": ", 1) for line in paragraph.splitlines() if ": " in line and not line[0].isspace()
        )
        fields[control["Package"]] = control
    return fields


def resolve(names: Iterable[str]) -> list[Package]:
    """Pin each package to apt's candidate version; the kernel metapackage becomes the real kernel."""
    wanted = list(names)
    if KERNEL_METAPACKAGE in wanted:
        depends = _show([KERNEL_METAPACKAGE])[KERNEL_METAPACKAGE]["Depends"]
        kernel = depends.split(",")[0].split()[0]
        wanted = [kernel if name == KERNEL_METAPACKAGE else name for name in wanted]
    fields = _show(wanted)
    missing = [name for name in wanted if name not in fields]
    if missing:
        raise ImageError(f"apt has no candidate for {', '.join(missing)}")
    return [Package(name, fields[name]["Version"]) for name in wanted]


def _download(packages: list[Package], debs: Path) -> None:
    """Fetch the .deb files not yet cached, with one `apt-get download` call."""
    todo = [p for p in packages if not (debs / f"{p.stem}.deb").exists()]
    if not todo:
        return
    with tempfile.TemporaryDirectory(dir=debs, prefix=".download-") as tmp:
        run(["apt-get", "download", *(f"{p.name}={p.version}" for p in todo)], cwd=Path(tmp))
        for package in todo:
            found = list(Path(tmp).glob(f"{package.name}_*.deb"))
            if len(found) != 1:
                raise ImageError(f"apt-get download did not produce one .deb for {package.name}: {found}")
            os.replace(found[0], debs / f"{package.stem}.deb")


def unpack(packages: list[Package], debs: Path) -> dict[str, Path]:
    """Each package unpacked with `dpkg-deb -x` (cached beside its .deb), by package name."""
    debs.mkdir(parents=True, exist_ok=True)
    _download(packages, debs)
    trees = {}
    for package in packages:
        tree = debs / package.stem
        if not tree.is_dir():
            # Unpack beside the cache entry and rename, so an interrupted unpack is never taken as done.
            tmp = Path(tempfile.mkdtemp(dir=debs, prefix=f".{package.stem}-"))
            run(["dpkg-deb", "-x", debs / f"{package.stem}.deb", tmp])
            try:
                tmp.rename(tree)
            except OSError:
                shutil.rmtree(tmp)  # another build unpacked it first
        trees[package.name] = tree
    return trees
