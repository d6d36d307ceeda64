"""Update bundles as hil reads them on the host: hil's own format, a `docker save` archive as balenaOS
ships a hostapp (both layouts Docker writes), a format only its updater reads, and the bundles file that
names a team's bundle per role."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from hil.errors import ImageError
from hil.images.bundles import BundleInfo, read_bundle
from hil.lab.bundles import Bundles, bundles_beside, load_bundles


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def docker_save(path: Path, *, labels: dict[str, str], oci: bool = False) -> Path:
    """An archive shaped as `docker save` writes one: layer, image config, manifest.json (a list)."""
    layer = _tar(path.with_name("layer.tar"), [("etc/os-release", b"VERSION_ID=2.1.0\n")]).read_bytes()
    config = json.dumps({"architecture": "amd64", "config": {"Labels": labels}, "rootfs": {}}).encode()
    config_id, layer_id = hashlib.sha256(config).hexdigest(), hashlib.sha256(layer).hexdigest()
    config_name = f"blobs/sha256/{config_id}" if oci else f"{config_id}.json"
    layer_name = f"blobs/sha256/{layer_id}" if oci else f"{layer_id}/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": ["balena-os:2.1.0"], "Layers": [layer_name]}]
    members = [(layer_name, layer), (config_name, config), ("manifest.json", json.dumps(manifest).encode())]
    if oci:
        members += [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", b"{}")]
    else:
        members.append(("repositories", b'{"balena-os": {"2.1.0": "x"}}'))
    return _tar(path, members)


@pytest.mark.parametrize("oci", [False, True], ids=["classic", "oci-layout"])
def test_a_docker_save_archive_is_planned_from_its_list_manifest(tmp_path: Path, oci: bool) -> None:
    bundle = docker_save(
        tmp_path / "hostapp.tar", labels={"org.opencontainers.image.version": "2.1.0"}, oci=oci
    )
    assert read_bundle(bundle) == BundleInfo("docker-save", "2.1.0")


def test_a_docker_save_archive_without_a_version_label_says_none(tmp_path: Path) -> None:
    assert read_bundle(docker_save(tmp_path / "h.tar", labels={})) == BundleInfo("docker-save", None)


def test_a_list_manifest_that_is_not_docker_saves_is_refused(tmp_path: Path) -> None:
    bundle = _tar(tmp_path / "odd.tar", [("manifest.json", b'[{"Config": 1}]')])
    with pytest.raises(ImageError, match="names no Config and Layers"):
        read_bundle(bundle)
    two = _tar(tmp_path / "two.tar", [("manifest.json", b"[{}, {}]")])
    with pytest.raises(ImageError, match=r"holds one image; its manifest\.json lists 2"):
        read_bundle(two)


def test_hils_own_bundle_says_its_version_and_device_type_even_truncated(tmp_path: Path) -> None:
    manifest = json.dumps({"version": "1.0.1", "device_type": "qemux86-64"}).encode()
    bundle = _tar(tmp_path / "b.tar", [("manifest.json", manifest), ("rootfs.img.gz", b"\0" * 100_000)])
    assert read_bundle(bundle) == BundleInfo("hil", "1.0.1", "qemux86-64")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(bundle.read_bytes()[:20_000])
    assert read_bundle(cut) == BundleInfo("hil", "1.0.1", "qemux86-64")


def test_a_format_only_its_updater_reads_is_none(tmp_path: Path) -> None:
    raucb = tmp_path / "update.raucb"
    raucb.write_bytes(b"hsqs" + b"\0" * 4096)  # a squashfs, as a RAUC bundle starts
    assert read_bundle(raucb) is None


def test_the_bundles_file_names_each_role_and_refuses_a_misspelt_one(tmp_path: Path) -> None:
    for name in ("good.raucb", "bad.raucb"):
        (tmp_path / name).write_bytes(b"x")
    image = tmp_path / "os.img"
    image.write_bytes(b"")
    assert bundles_beside(image) is None
    listing = tmp_path / "os.bundles.yaml"
    listing.write_text("version: 2.0.0\ngood: good.raucb\nnever-boots: bad.raucb\n")
    assert bundles_beside(image) == listing
    assert load_bundles(listing) == Bundles(
        {"good": tmp_path / "good.raucb", "never-boots": tmp_path / "bad.raucb"}, "2.0.0"
    )
    listing.write_text("good: good.raucb\nnever-boot: bad.raucb\n")
    with pytest.raises(ImageError, match=r"os\.bundles\.yaml:2: never-boot: unknown field"):
        load_bundles(listing)
    listing.write_text("good: good.raucb\nother-key: gone.raucb\n")
    with pytest.raises(ImageError, match="no such bundle file for other-key"):
        load_bundles(listing)
