"""Debian packages for the image: resolve versions with apt, download and unpack them into the cache.

Packages of the host's architecture come through the host's apt. Another architecture's come through
a private apt configuration (its own sources, lists and status under the cache), so the host's package
system never learns that architecture: no `dpkg --add-architecture`, nothing installed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hil.errors import ImageError
from hil.images.builders.tools import run

KERNEL_PREFIX = "linux-image-cloud-"
SUITE = "bookworm"
SOURCES = (
    f"deb http://deb.debian.org/debian {SUITE} main",
    f"deb http://deb.debian.org/debian {SUITE}-updates main",
    f"deb http://deb.debian.org/debian-security {SUITE}-security main",
)
_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
_LISTS_MAX_AGE = 24 * 3600  # refresh a private configuration's package lists once a day


@dataclass(frozen=True)
class Apt:
    """How apt is called: the host's configuration (no options), or a private one for `arch`."""

    arch: str = ""  # "": the host's architecture, through the host's apt
    options: tuple[str, ...] = field(default=(), compare=False)


HOST = Apt()


def foreign_apt(arch: str, root: Path) -> Apt:
    """A private apt configuration for Debian architecture `arch` under `root`, its lists fetched."""
    state, lists = root / "state", root / "state" / "lists"
    (lists / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "status").touch()
    sources = root / "sources.list"
    sources.write_text(
        "".join(
            line.replace("deb ", f"deb [arch={arch} signed-by={_KEYRING}] ", 1) + "\n" for line in SOURCES
        )
    )
    apt = Apt(
        arch,
        (
            f"Dir::State={state}",
            f"Dir::State::status={state / 'status'}",
            f"Dir::Cache={root / 'cache'}",
            f"Dir::Etc::SourceList={sources}",
            "Dir::Etc::SourceParts=/nonexistent",
            f"APT::Architecture={arch}",
            f"APT::Architectures={arch}",
        ),
    )
    stamp = root / "updated"
    if not stamp.exists() or time.time() - stamp.stat().st_mtime > _LISTS_MAX_AGE:
        run(["apt-get", *_opts(apt), "-qq", "update"])
        stamp.touch()
    return apt


def _opts(apt: Apt) -> list[str]:
    return [arg for option in apt.options for arg in ("-o", option)]


@dataclass(frozen=True)
class Package:
    """One Debian binary package at the exact version apt would install."""

    name: str
    version: str
    arch: str = ""  # "": the host's architecture

    @property
    def stem(self) -> str:
        """A file-name-safe `name_version` (`_arch` after it for another architecture's package)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}" + (f"_{self.arch}" if self.arch else "")


def _show(names: Iterable[str], apt: Apt) -> dict[str, dict[str, str]]:
    """The candidate version's control fields for each package, from `apt-cache show`."""
    names = list(names)
    try:
        text = run(["apt-cache", *_opts(apt), "show", "--no-all-versions", *names])
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


def resolve(names: Iterable[str], apt: Apt = HOST) -> list[Package]:
    """Pin each package to apt's candidate version; a kernel metapackage becomes the real kernel."""
    wanted = list(names)
    for meta in [name for name in wanted if name.startswith(KERNEL_PREFIX)]:
        depends = _show([meta], apt)[meta]["Depends"]
        kernel = depends.split(",")[0].split()[0]
        wanted = [kernel if name == meta else name for name in wanted]
    fields = _show(wanted, apt)
    missing = [name for name in wanted if name not in fields]
    if missing:
        raise ImageError(f"apt has no candidate for {', '.join(missing)}")
    return [Package(name, fields[name]["Version"], apt.arch) for name in wanted]


def _download(packages: list[Package], debs: Path, apt: Apt) -> None:
    """Fetch the .deb files not yet cached, with one `apt-get download` call."""
    todo = [p for p in packages if not (debs / f"{p.stem}.deb").exists()]
    if not todo:
        return
    with tempfile.TemporaryDirectory(dir=debs, prefix=".download-") as tmp:
        run(["apt-get", *_opts(apt), "download", *(f"{p.name}={p.version}" for p in todo)], cwd=Path(tmp))
        for package in todo:
            found = list(Path(tmp).glob(f"{package.name}_*.deb"))
            if len(found) != 1:
                raise ImageError(f"apt-get download did not produce one .deb for {package.name}: {found}")
            os.replace(found[0], debs / f"{package.stem}.deb")


def unpack(packages: list[Package], debs: Path, apt: Apt = HOST) -> dict[str, Path]:
    """Each package unpacked with `dpkg-deb -x` (cached beside its .deb), by package name."""
    debs.mkdir(parents=True, exist_ok=True)
    _download(packages, debs, apt)
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
