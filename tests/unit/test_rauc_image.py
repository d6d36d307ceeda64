"""The Debian 12 RAUC image: what decides its cache entry, the versions and files it names, the slot layout
its GRUB and RAUC agree on, and (built, not booted) its disk and bundles as RAUC on this host reads them.
Booting it and installing the bundles is the update suite's end-to-end run."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from hil.commands.main import main
from hil.errors import ImageError
from hil.images.builders import debian, disk, rauc
from hil.images.builders.debs import Package
from hil.images.builders.rauc import RaucImage, Recipe, build_rauc, bundles_yaml, image_in, next_version
from hil.os.vocabulary import BUNDLE_ROLES

PACKAGES = (Package("rauc", "1.8-2"), Package("grub-common", "2.06-13+deb12u1"))
RECIPE = Recipe("1.0.0", PACKAGES, "hil-debian")


@pytest.mark.parametrize(
    "changed",
    [
        dataclasses.replace(RECIPE, version="1.0.1"),
        dataclasses.replace(RECIPE, root_password="another"),
        dataclasses.replace(RECIPE, packages=(PACKAGES[0], Package("grub-common", "2.06-13+deb12u2"))),
        debian.Recipe("password", PACKAGES, "hil-debian", None),  # the plain image of the same packages
    ],
    ids=["version", "password", "package-version", "plain-image"],
)
def test_the_cache_key_is_the_recipes_and_changes_with_each_input(changed: Recipe | debian.Recipe) -> None:
    assert RECIPE.cache_key() == Recipe("1.0.0", PACKAGES, "hil-debian").cache_key()
    assert changed.cache_key() != RECIPE.cache_key()


@pytest.mark.parametrize(
    ("version", "later"), [("1.0.0", "1.0.1"), ("1.0.9", "1.0.10"), ("2", "3"), ("0.41.007", "0.41.8")]
)
def test_the_bundles_are_one_version_later_the_last_number_raised(version: str, later: str) -> None:
    assert next_version(version) == later


@pytest.mark.parametrize("version", ["1.0.0-rc1", "v1.0", "", "1..0", "1.0.", "\u0661.\u0660"])
def test_a_version_the_next_cannot_be_counted_from_is_refused(version: str) -> None:
    with pytest.raises(ImageError, match=r"must be numbers joined by dots \(e\.g\. 1\.0\.0\)"):
        rauc.recipe(version)


def test_a_bad_version_is_refused_before_apt_is_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def resolve(names: object) -> list[Package]:
        raise AssertionError("apt was asked")

    monkeypatch.setattr(rauc, "resolve", resolve)
    with pytest.raises(ImageError, match=r"'1\.0-beta' must be numbers joined by dots"):
        build_rauc(version="1.0-beta", cache=tmp_path, log=lambda line: None)


def test_the_cli_refuses_a_bad_version_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "build-rauc", "--version", "2.0-rc1"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith("hil: ImageError: version '2.0-rc1' must be numbers joined by dots")


def test_the_root_password_is_the_plain_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(debian.ROOT_PASSWORD_ENV, raising=False)
    assert rauc.recipe("1.0.0").root_password == debian.DEFAULT_ROOT_PASSWORD
    monkeypatch.setenv(debian.ROOT_PASSWORD_ENV, "from-env")
    assert rauc.recipe("1.0.0").root_password == "from-env"


def test_the_roles_are_the_update_suites() -> None:
    assert rauc.ROLES == BUNDLE_ROLES


def test_the_bundles_file_names_the_version_and_each_roles_file_beside_it(tmp_path: Path) -> None:
    image = image_in(tmp_path, "1.0.0")
    assert (image.version, image.version_after) == ("1.0.0", "1.0.1")
    assert image.disk.name == "debian12-rauc-1.0.0.img"
    assert image.bundles_file == tmp_path / "debian12-rauc-1.0.0.bundles.yaml"
    data = yaml.safe_load(bundles_yaml("1.0.1", image.bundles))
    assert list(data) == ["version", *rauc.ROLES]
    assert data["version"] == "1.0.1"
    assert data["good"] == "rauc-1.0.1-good.raucb"
    assert {image.bundles_file.parent / data[role] for role in rauc.ROLES} == set(image.bundles.values())


def test_a_version_yaml_would_read_as_a_number_stays_a_string(tmp_path: Path) -> None:
    assert yaml.safe_load(bundles_yaml("1.10", image_in(tmp_path, "1.9").bundles))["version"] == "1.10"


def test_a_shell_reads_the_version_from_os_release(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text(rauc.os_release("1.0.1"))
    script = f'. {release}; echo "$ID $VERSION_ID $IMAGE_VERSION"'
    shell = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert shell.stdout == "debian-rauc 1.0.1 1.0.1\n"


def test_grub_and_rauc_name_the_slots_the_layout_lays_out() -> None:
    numbers = {p.name: n for n, p in enumerate(rauc.LAYOUT, start=1)}
    grub = (rauc.FILES / "grub.cfg").read_text()
    assert f'if [ "$slot" = "B" ]; then B_TRY=1; part={numbers["rootB"]}; else slot=A; A_TRY=1; part=' in grub
    assert f"part={numbers['rootA']}; fi" in grub
    assert "root=PARTLABEL=root$slot" in grub
    conf = (rauc.FILES / "root" / "etc" / "rauc" / "system.conf").read_text()
    assert re.findall(r"^device=/dev/disk/by-partlabel/(\w+)$", conf, re.M) == ["rootA", "rootB"]
    assert re.findall(r"^bootname=(\w)$", conf, re.M) == ["A", "B"]
    assert f"\ncompatible={rauc.COMPATIBLE}\n" in conf
    assert "ORDER=A B" in rauc.FIRST_GRUBENV


def test_a_health_rollback_leaves_a_breadcrumb_that_the_next_install_clears() -> None:
    root = rauc.FILES / "root"
    mark_bad = (root / "usr/lib/systemd/system/rauc-mark-bad.service").read_text()
    [left] = re.findall(r"^ExecStart=/usr/bin/touch (\S+)$", mark_bad, re.M)
    conf = (root / "etc/rauc/system.conf").read_text()
    [handler] = re.findall(r"^post-install=(\S+)$", conf, re.M)
    assert f"\nrm -f {left}\n" in (root / handler.lstrip("/")).read_text()
    assert left == "/data/rauc/rollback-health"  # the OS profile's state_dir and breadcrumb


def test_the_root_tree_gets_rauc_its_keyring_the_health_check_and_the_kernel_where_grub_loads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    for directory in ("etc", "boot"):
        (root / directory).mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.1.0-57-cloud-amd64").write_bytes(b"kernel")
    (root / "boot" / "initrd.img-6.1.0-57-cloud-amd64").write_bytes(b"initrd")
    keyring = tmp_path / "ca.cert.pem"
    keyring.write_text("-----BEGIN CERTIFICATE-----\n")
    enabled: list[str] = []
    monkeypatch.setattr(rauc, "_enable", lambda tree, *units: enabled.extend(units))
    rauc.configure(root, keyring)
    assert (root / "etc" / "hostname").read_text() == "rauc\n"
    assert (root / "etc" / "rauc" / "keyring.pem").read_text() == keyring.read_text()
    fstab = [line.split() for line in (root / "etc" / "fstab").read_text().splitlines() if line[:1] != "#"]
    assert [entry[1] for entry in fstab] == ["/boot/efi", "/data"]  # never the root: PARTLABEL picks it
    assert (root / "etc" / "systemd" / "network" / "20-wired.network").is_file()  # the plain image's DHCP
    assert os.readlink(root / "boot" / "vmlinuz") == "vmlinuz-6.1.0-57-cloud-amd64"
    assert os.readlink(root / "boot" / "initrd.img") == "initrd.img-6.1.0-57-cloud-amd64"
    assert (root / "boot" / "efi").is_dir() and (root / "data").is_dir()
    assert enabled == ["rauc-mark-good.service", "systemd-boot-check-no-failures.service"]


def test_a_partition_given_no_image_stays_empty_and_a_name_the_layout_lacks_is_refused(
    tmp_path: Path,
) -> None:
    layout = (disk.Partition("rootA", disk.LINUX_TYPE, 1), disk.Partition("rootB", disk.LINUX_TYPE, 1))
    image = tmp_path / "rootA.img"
    image.write_bytes(b"A" * disk.MIB)
    out = tmp_path / "disk.img"
    disk.assemble(out, {"rootA": image}, layout)
    table = disk.partition_table(out)
    data = out.read_bytes()
    assert data[table[0]["start"] * 512 :][: disk.MIB] == image.read_bytes()
    assert data[table[1]["start"] * 512 :][: disk.MIB] == bytes(disk.MIB)
    with pytest.raises(ImageError, match="no partition in the layout is named rootC"):
        disk.assemble(out, {"rootA": image, "rootC": image}, layout)


def test_an_ext4_image_below_512_mib_gets_the_block_size_asked_for(tmp_path: Path) -> None:
    image = tmp_path / "small.ext4"
    disk.mkfs_ext4(image, 16, "root", block_size=4096)
    header = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Block size:\s+4096$", header, re.M)


# --- built: the disk and the bundles as they lie in the cache, read on this host (no QEMU boot) ---------


@pytest.fixture(scope="module")
def built() -> RaucImage:
    return build_rauc(log=lambda line: None)


def _in_slot(image: Path, command: str, offset: int = 0) -> str:
    """debugfs's answer to `command` on the ext4 file system at `offset` bytes into `image`."""
    where = f"{image}?offset={offset}" if offset else str(image)
    return subprocess.run(
        ["debugfs", "-R", command, where], capture_output=True, text=True, check=True
    ).stdout


def _os_release(image: Path, offset: int = 0) -> dict[str, str]:
    text = _in_slot(image, "cat /usr/lib/os-release", offset)
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _rauc_info(built: RaucImage, role: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rauc", "info", f"--keyring={built.keyring}", str(built.bundles[role])],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.mark.qemu
@pytest.mark.slow
def test_the_built_image_and_its_bundles(built: RaucImage, tmp_path: Path) -> None:
    table = {p["name"]: p for p in disk.partition_table(built.disk)}
    assert list(table) == ["esp", "rootA", "rootB", "data"]
    assert [table[p.name]["size"] for p in rauc.LAYOUT] == [p.size_mib * 2048 for p in rauc.LAYOUT]
    assert table["esp"]["type"] == disk.ESP_TYPE
    root_a = table["rootA"]["start"] * 512
    assert "Type: symlink" in _in_slot(built.disk, "stat /boot/vmlinuz", root_a)
    assert _os_release(built.disk, root_a)["VERSION_ID"] == "1.0.0"
    with built.disk.open("rb") as f:
        f.seek(table["rootB"]["start"] * 512)
        assert f.read(disk.MIB) == bytes(disk.MIB)  # slot B holds nothing until the first install
    grubenv = subprocess.run(
        ["mtype", "-i", f"{built.disk}@@{table['esp']['start'] * 512}", "::/grubenv"],
        capture_output=True, text=True, check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    ).stdout  # fmt: skip
    assert [line for line in grubenv.splitlines() if "=" in line] == list(rauc.FIRST_GRUBENV)

    listed = yaml.safe_load(built.bundles_file.read_text())
    assert listed == {"version": "1.0.1", **{role: path.name for role, path in built.bundles.items()}}
    assert all((built.bundles_file.parent / listed[role]).is_file() for role in rauc.ROLES)
    good = built.bundles["good"].stat().st_size
    assert built.bundles["truncated"].stat().st_size == good // 2

    # What each bundle carries for the slot: the next version, with its kernel, broken one way apiece.
    slots = {}
    for role in ("good", "never-boots", "kernel-panics", "health-fails"):
        out = tmp_path / role
        subprocess.run(
            ["unsquashfs", "-q", "-n", "-d", str(out), str(built.bundles[role]), "rootfs.ext4"],
            check=True, capture_output=True,
        )  # fmt: skip
        slot = out / "rootfs.ext4"
        assert "Type: symlink" in _in_slot(slot, "stat /boot/vmlinuz"), role
        assert _os_release(slot)["VERSION_ID"] == "1.0.1", role
        slots[role] = {
            "init": "Inode:" in _in_slot(slot, "stat /usr/sbin/init"),
            "initrd": _in_slot(slot, "stat /boot/initrd.img").split("Type: ")[1].split()[0],
            "broken": "broken.service" in _in_slot(slot, "ls /etc/systemd/system/multi-user.target.wants"),
        }
        slot.unlink()
    assert slots == {
        "good": {"init": True, "initrd": "symlink", "broken": False},
        "never-boots": {"init": False, "initrd": "symlink", "broken": False},
        "kernel-panics": {"init": True, "initrd": "regular", "broken": False},
        "health-fails": {"init": True, "initrd": "symlink", "broken": True},
    }

    # RAUC on this host, with the image's keyring: the release CA signed all but other-key.
    info = _rauc_info(built, "good")
    assert info.returncode == 0, info.stderr
    assert "Compatible: \t'hil-debian12-x86_64'" in info.stdout
    assert "Version:    \t'1.0.1'" in info.stdout
    assert "Compatible: \t'other-board-x86_64'" in _rauc_info(built, "other-compatible").stdout
    other_key = _rauc_info(built, "other-key")
    assert other_key.returncode != 0
    assert "signature verification failed" in other_key.stderr
    assert _rauc_info(built, "truncated").returncode != 0
