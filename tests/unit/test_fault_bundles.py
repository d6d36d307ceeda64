"""Faults in the update itself: a bundle taken apart, its root changed, put back together and signed again
(hil's own format natively; any other by the profile's host commands, RAUC's with real `rauc extract` and
`rauc bundle`), the bundles file or the bundle beside the image then naming the rebuilt one, the original
untouched; and every way that can fail ends as "not injected", never as a fault in place."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from hil.faults import repack
from hil.faults.catalogue import not_applicable
from hil.faults.inject import NotInjected, inject
from hil.faults.model import Fault
from hil.images import edit, hil_bundle
from hil.images.builders.rauc import make_pki
from hil.os.loader import load_profile
from hil.os.model import OsProfile, Repack

CAUGHT = {"suite": "hostapp_update", "test": "test_update::test_x", "message": "lost"}
RCS = "mount /mnt/data\nstart services\n"


def _root(tmp_path: Path) -> Path:
    """A bare ext4 root file system, as a bundle carries it."""
    tree = tmp_path / "tree"
    (tree / "etc" / "init.d").mkdir(parents=True)
    (tree / "etc" / "init.d" / "rcS").write_text(RCS)
    root = tmp_path / "rootfs.ext4"
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tree), str(root), "4M"], check=True, capture_output=True
    )
    return root


def _fault(*edits: dict) -> Fault:
    return Fault(description="d", bundle_edits={"good": edits}, caught_by=CAUGHT)  # type: ignore[arg-type]


WIPE = {
    "replace": {
        "path": "/etc/init.d/rcS",
        "old": "mount /mnt/data\n",
        "new": "mount /mnt/data\nrm -rf /mnt/data/*\n",
    }
}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _image(directory: Path) -> Path:
    """An image file beside which the bundles lie (the bundle edits never touch it)."""
    directory.mkdir(parents=True, exist_ok=True)
    image = directory / "os.img"
    image.write_bytes(b"\0" * 4096)
    return image


def test_a_bundle_in_hils_format_is_rebuilt_beside_the_copy_and_the_original_kept(tmp_path: Path) -> None:
    original = tmp_path / "cache" / "os.bundle.tar"
    original.parent.mkdir()
    hil_bundle.write_bundle(_root(tmp_path), original, version="2.0.0", device_type="qemux86-64", variant="x")
    before = _digest(original)
    image = _image(tmp_path / "copy")
    (image.parent / "os.bundle.tar").symlink_to(original)  # as copy_image links sidecars

    done = inject(_fault(WIPE), load_profile("reference"), image, original.parent)

    rebuilt = image.parent / "os.bundle.tar"
    assert not rebuilt.is_symlink() and _digest(original) == before
    assert done[-1].startswith("rebuilt the good bundle") and "the good bundle's root" in done[0]
    root = tmp_path / "check.ext4"
    manifest = hil_bundle.unpack(rebuilt, root)  # its stated digest checked
    assert (manifest["version"], manifest["device_type"], manifest["variant"]) == ("2.0.0", "qemux86-64", "x")
    assert (
        edit.read_file(root, edit.WHOLE, "/etc/init.d/rcS")
        == RCS.replace("data\n", "data\nrm -rf /mnt/data/*\n", 1).encode()
    )


def _tar_profile(unpack: str, pack: str) -> OsProfile:
    """The reference profile, its bundles a plain tar of rootfs.ext4 rebuilt by host commands."""
    profile = load_profile("reference")
    assert profile.update is not None
    how = Repack(unpack=unpack, rootfs="rootfs.ext4", pack=pack)
    return profile.model_copy(update={"update": profile.update.model_copy(update={"repack": how})})


TAR = _tar_profile(
    'mkdir "$HIL_CONTENT" && tar -xf "$HIL_BUNDLE" -C "$HIL_CONTENT"',
    'tar -cf "$HIL_OUT" -C "$HIL_CONTENT" .',
)


def _tar_bundles(tmp_path: Path, folder: str) -> tuple[Path, Path]:
    """A directory (named to tempt a shell) with os.img, a bundles file and a tar bundle it names."""
    image = _image(tmp_path / folder)
    root = _root(tmp_path)
    subprocess.run(["tar", "-cf", str(image.parent / "good.tar"), "-C", str(tmp_path), root.name], check=True)
    (image.parent / "os.bundles.yaml").write_text("version: 2.0.0\ngood: good.tar\n")
    return image, image.parent / "good.tar"


def test_a_bundle_of_another_format_is_rebuilt_by_the_profiles_commands(tmp_path: Path) -> None:
    image, original = _tar_bundles(tmp_path, "a b $(touch pwned) `id`")
    before = _digest(original)

    inject(_fault(WIPE), TAR, image, image.parent)

    named = yaml.safe_load((image.parent / "os.bundles.yaml").read_text())
    rebuilt = Path(named["good"])
    assert named["version"] == "2.0.0" and rebuilt.parent == image.parent and rebuilt != original
    assert _digest(original) == before and not list(tmp_path.rglob("pwned"))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(rebuilt), "-C", str(out)], check=True)
    assert b"rm -rf /mnt/data/*" in edit.read_file(out / "rootfs.ext4", edit.WHOLE, "/etc/init.d/rcS")
    assert not list(image.parent.glob(".hil-repack-*"))  # the work directory is gone


@pytest.mark.parametrize(
    ("profile", "said"),
    [
        (
            _tar_profile("echo cannot read it >&2; exit 3", "true"),
            "unpacking good.tar .* exited 3: cannot read it",
        ),
        (_tar_profile('mkdir "$HIL_CONTENT"', "true"), "left no file rootfs.ext4"),
        (
            _tar_profile('mkdir "$HIL_CONTENT" && tar -xf "$HIL_BUNDLE" -C "$HIL_CONTENT"', "true"),
            "wrote no file",
        ),
        (
            _tar_profile('mkdir "$HIL_CONTENT" && ln -s /etc/passwd "$HIL_CONTENT/rootfs.ext4"', "true"),
            "left no file",
        ),
    ],
)
def test_a_bundle_that_cannot_be_rebuilt_is_not_injected(
    tmp_path: Path, profile: OsProfile, said: str
) -> None:
    image, _ = _tar_bundles(tmp_path, "img")
    listed = (image.parent / "os.bundles.yaml").read_text()
    with pytest.raises(NotInjected, match=said):
        inject(_fault(WIPE), profile, image, image.parent)
    assert (image.parent / "os.bundles.yaml").read_text() == listed  # still the original


def test_a_repack_command_past_its_bound_is_killed_with_its_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repack, "COMMAND_SECONDS", 1.0)
    marker = f"hil-repack-test-{os.getpid()}"
    image, _ = _tar_bundles(tmp_path, "img")
    stuck = _tar_profile(f"sh -c 'sleep 60; : {marker}' & sleep 60", "true")
    with pytest.raises(NotInjected, match="did not finish within 1 s"):
        inject(_fault(WIPE), stuck, image, image.parent)
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == "", f"left running: {left}"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"remove": "/mnt/data/app"}, "on the data partition .* which an update does not carry"),
        ({"stub": "/usr/sbin/no-such-program"}, "not in the good bundle's root"),
        (
            {"replace": {"path": "/etc/init.d/rcS", "old": "no such text", "new": ""}},
            "text to replace is not in it",
        ),
    ],
)
def test_an_edit_the_bundles_root_cannot_take_is_not_injected(
    tmp_path: Path, change: dict, said: str
) -> None:
    image, _ = _tar_bundles(tmp_path, "img")
    with pytest.raises(NotInjected, match=said):
        inject(_fault(change), TAR, image, image.parent)


def test_a_role_with_no_bundle_beside_the_image_is_not_injected(tmp_path: Path) -> None:
    image = _image(tmp_path / "img")
    with pytest.raises(NotInjected, match="no good bundle beside it"):
        inject(_fault(WIPE), load_profile("reference"), image, image.parent)


def test_update_faults_need_a_profile_that_says_how_to_rebuild_its_bundles() -> None:
    fault = _fault(WIPE)
    assert not_applicable(fault, load_profile("reference")) is None
    assert not_applicable(fault, load_profile("rauc")) is None
    assert "update.repack" in str(not_applicable(fault, load_profile("balenaos")))
    assert "A/B root partitions" in str(not_applicable(fault, load_profile("generic")))


def test_a_role_both_swapped_and_edited_is_refused() -> None:
    with pytest.raises(ValueError, match=r"both swapped .* and edited"):
        Fault(
            description="d",
            bundles={"good": "kernel-panics"},
            bundle_edits={"good": (WIPE,)},
            caught_by=CAUGHT,
        )  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("rauc") is None, reason="rauc is not installed")
def test_a_rauc_bundle_is_extracted_changed_and_signed_again_with_the_images_key(tmp_path: Path) -> None:
    """The rauc profile's own repack commands, on a real bundle signed by a CA made here."""
    keys = tmp_path / "cache" / "keys" / "release"
    pki = make_pki(keys, "test release")
    content = tmp_path / "content"
    content.mkdir()
    shutil.copyfile(_root(tmp_path), content / "rootfs.ext4")
    (content / "padding").write_bytes(os.urandom(64 << 10))  # rauc refuses a squashfs of one block
    (content / "manifest.raucm").write_text(
        "[update]\ncompatible=hil-test\nversion=2.0.0\n\n[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=rootfs.ext4\n"
    )
    image = _image(tmp_path / "copy")
    original = tmp_path / "cache" / "good.raucb"
    subprocess.run(["rauc", "bundle", f"--cert={pki.cert}", f"--key={pki.key}", str(content), str(original)],
                   check=True, capture_output=True)  # fmt: skip
    (image.parent / "os.bundles.yaml").write_text(f"good: {original}\n")

    inject(_fault(WIPE), load_profile("rauc"), image, original.parent)

    rebuilt = Path(yaml.safe_load((image.parent / "os.bundles.yaml").read_text())["good"])
    out = tmp_path / "extracted"
    # rauc extract verifies the signature against the image's CA before it unpacks anything.
    subprocess.run(
        ["rauc", "extract", f"--keyring={pki.ca}", str(rebuilt), str(out)], check=True, capture_output=True
    )
    assert b"rm -rf /mnt/data/*" in edit.read_file(out / "rootfs.ext4", edit.WHOLE, "/etc/init.d/rcS")
    assert "version=2.0.0" in (out / "manifest.raucm").read_text()
