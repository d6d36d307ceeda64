"""How the hostapp-update suite chooses what it updates from and to, on an updater hil did not write:
with a bundles file, the image under test is the base, the good bundle the target, and the target's
version is the one the file states; the base's version is os-release's in the image's first slot."""

from __future__ import annotations

from pathlib import Path

from hil.lab.bundles import load_bundles
from hil.lab.rig import load_rig
from suites.hostapp_update.conftest import _plan
from tests.support.disk_images import make_disk
from tests.unit.test_image_edit import _with_ext4

ROOT = Path(__file__).resolve().parents[2]


def test_a_bundles_file_makes_the_image_the_base_and_its_good_bundle_the_target(tmp_path: Path) -> None:
    image = _with_ext4(make_disk(tmp_path / "os.img", boot_files={}), tmp_path)  # VERSION_ID 1.0.0 in slot 2
    for role in ("good", "never-boots"):
        (tmp_path / f"{role}.raucb").write_bytes(b"hsqs")  # a squashfs, as RAUC bundles are
    listing = tmp_path / "os.bundles.yaml"
    listing.write_text("version: 1.0.1\ngood: good.raucb\nnever-boots: never-boots.raucb\n")
    plan = _plan(load_rig(ROOT / "rigs" / "qemu-rauc.yaml"), image, None, load_bundles(listing))
    assert (plan.base, plan.bundle) == (image, tmp_path / "good.raucb")
    assert (plan.base_version, plan.target_version) == ("1.0.0", "1.0.1")
    assert plan.info is None  # RAUC's format: only rauc reads it
