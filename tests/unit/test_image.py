"""Images: every format streams the same raw bytes, says its device type, and fails with a clear error."""

from __future__ import annotations

import gzip
import json
import lzma
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from hil.commands.main import main as hil_main
from hil.errors import ImageError
from hil.images.bmap import find_bmap, parse_bmap
from hil.images.builders.cache import one_builder
from hil.images.device_type import ImageInfo, check_device_type, read_info
from hil.images.partitions import partitions
from hil.images.read import check_integrity, materialize, open_image
from tests.support.disk_images import make_disk

DEVICE_TYPE = json.dumps({"slug": "raspberrypi4-64", "version": "6.1.2"}).encode()


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    return make_disk(tmp_path / "os.img", boot_files={"device-type.json": DEVICE_TYPE})


def compress(raw: Path, fmt: str) -> Path:
    data = raw.read_bytes()
    if fmt == ".img.gz":
        out = raw.with_name(raw.name + ".gz")
        out.write_bytes(gzip.compress(data, compresslevel=1))
    elif fmt == ".img.xz":
        out = raw.with_name(raw.name + ".xz")
        out.write_bytes(lzma.compress(data, preset=0))
    elif fmt == ".zip":
        out = raw.with_suffix(".zip")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(raw.name, data)
    else:
        return raw
    return out


def read_all(path: Path) -> bytes:
    with open_image(path) as stream:
        return b"".join(iter(lambda: stream.read(1 << 20), b""))


@pytest.mark.parametrize("fmt", [".img", ".img.gz", ".img.xz", ".zip"])
def test_every_format_streams_the_raw_image(disk: Path, fmt: str) -> None:
    assert read_all(compress(disk, fmt)) == disk.read_bytes()


@pytest.mark.parametrize("fmt", [".img", ".img.gz", ".img.xz", ".zip"])
def test_the_device_type_is_read_from_the_boot_partition_of_every_format(disk: Path, fmt: str) -> None:
    # device-type.json's `version` is its format's (balena's says 1), never the OS's: not read as one.
    assert read_info(compress(disk, fmt)) == ImageInfo(device_type="raspberrypi4-64", version=None)


def test_the_device_type_is_read_from_an_mbr_disk_too(tmp_path: Path) -> None:
    image = make_disk(tmp_path / "mbr.img", boot_files={"device-type.json": DEVICE_TYPE}, label="dos")
    assert [p.fat for p in partitions(image.read_bytes()[: 1 << 20])] == [True, False]
    assert read_info(image).device_type == "raspberrypi4-64"


def test_a_sidecar_fills_in_what_the_image_does_not_say(disk: Path, tmp_path: Path) -> None:
    packed = compress(disk, ".img.xz")
    disk.with_name("os.img.json").write_text(json.dumps({"slug": "raspberrypi4-64", "version": "6.1.3"}))
    assert read_info(packed) == ImageInfo(device_type="raspberrypi4-64", version="6.1.3")
    plain = make_disk(tmp_path / "plain.img", boot_files={"config.txt": b"x"})
    plain.with_name("plain.img.json").write_text(json.dumps({"slug": "qemux86-64", "version": "7"}))
    assert read_info(plain) == ImageInfo(device_type="qemux86-64", version="7")


@pytest.mark.parametrize(
    ("sidecar", "label", "said", "inside"),
    [
        ({"slug": "qemux86-64"}, "device type", "qemux86-64", "raspberrypi4-64"),
    ],
)
def test_a_sidecar_that_contradicts_the_image_is_refused_naming_both(
    disk: Path, sidecar: dict, label: str, said: str, inside: str
) -> None:
    packed = compress(disk, ".img.xz")
    disk.with_name("os.img.json").write_text(json.dumps(sidecar))
    refusal = (
        f"^{disk}.json says {label} {said}, but {packed}:/device-type.json says {inside}; "
        "fix or remove the sidecar$"
    )
    with pytest.raises(ImageError, match=refusal):
        read_info(packed)


def test_two_sidecars_that_disagree_are_refused(tmp_path: Path) -> None:
    packed = tmp_path / "blank.img.gz"
    packed.write_bytes(gzip.compress(bytes(1 << 20)))
    (tmp_path / "blank.img.gz.json").write_text(json.dumps({"slug": "qemux86-64"}))
    (tmp_path / "blank.img.json").write_text(json.dumps({"slug": "raspberrypi4-64"}))
    with pytest.raises(
        ImageError, match=r"blank\.img\.gz\.json says device type qemux86-64, but .*blank\.img\.json says"
    ):
        read_info(packed)


def test_an_image_without_device_type_json_has_an_unknown_device_type(tmp_path: Path) -> None:
    image = make_disk(tmp_path / "plain.img", boot_files={"config.txt": b"x"})
    assert read_info(image) == ImageInfo(device_type=None, version=None)


def test_an_image_for_another_device_type_is_refused() -> None:
    info = ImageInfo(device_type="raspberrypi4-64", version="1")
    refusal = r"image os\.img is built for raspberrypi4-64; the rig takes qemux86-64"
    with pytest.raises(ImageError, match=refusal):
        check_device_type(info, "qemux86-64", Path("os.img"))
    assert check_device_type(info, "raspberrypi4-64", Path("os.img")) == "image"


def test_an_image_that_names_no_device_type_is_flashed_only_when_the_user_states_it() -> None:
    unnamed = ImageInfo(None, None)
    with pytest.raises(ImageError, match=r"does not say which device type.*--device-type qemux86-64"):
        check_device_type(unnamed, "qemux86-64", Path("os.img"))
    assert check_device_type(unnamed, "qemux86-64", Path("os.img"), asserted="qemux86-64") == "asserted"
    with pytest.raises(
        ImageError, match="--device-type raspberrypi4-64 was given, but the rig takes qemux86-64"
    ):
        check_device_type(unnamed, "qemux86-64", Path("os.img"), asserted="raspberrypi4-64")
    named = ImageInfo("raspberrypi4-64", None)
    with pytest.raises(ImageError, match="the rig takes qemux86-64"):  # a claim never overrides the image
        check_device_type(named, "qemux86-64", Path("os.img"), asserted="qemux86-64")


def test_a_truncated_gzip_image_is_named_as_corrupt(disk: Path) -> None:
    packed = compress(disk, ".img.gz")
    packed.write_bytes(packed.read_bytes()[:-5000])
    with pytest.raises(ImageError, match=r"image .*os\.img\.gz is corrupt"):
        read_all(packed)


def test_a_damaged_xz_image_is_named_as_corrupt(disk: Path) -> None:
    packed = compress(disk, ".img.xz")
    data = bytearray(packed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    packed.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"image .*os\.img\.xz is corrupt"):
        read_all(packed)


def test_a_zip_must_hold_exactly_one_image(tmp_path: Path) -> None:
    archive_path = tmp_path / "two.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("a.img", b"a")
        archive.writestr("b.img", b"b")
    with pytest.raises(ImageError, match=r"must hold exactly one image; it holds \['a.img', 'b.img'\]"):
        read_all(archive_path)


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.zip"
    bogus.write_bytes(b"not a zip at all")
    with pytest.raises(ImageError, match="is not a valid zip archive"):
        read_all(bogus)


def test_a_missing_image_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"image .*nowhere\.img\.xz does not exist"):
        read_all(tmp_path / "nowhere.img.xz")


def test_materialize_caches_one_raw_copy_per_compressed_image(
    disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    assert materialize(disk) == disk
    raw = materialize(compress(disk, ".img.xz"))
    assert raw.parent == tmp_path / "cache" / "raw"
    assert raw.read_bytes() == disk.read_bytes()
    stamp = raw.stat().st_mtime_ns
    assert materialize(disk.with_name("os.img.xz")) == raw
    assert raw.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("fmt", [".img", ".img.xz", ".zip"])
def test_the_raw_size_is_read_from_the_containers_records(disk: Path, fmt: str) -> None:
    assert check_integrity(compress(disk, fmt)) == disk.stat().st_size
    assert check_integrity(compress(disk, ".img.gz")) is None  # gzip records it only modulo 4 GiB


def test_an_xz_of_several_streams_is_whole(disk: Path, tmp_path: Path) -> None:
    data = disk.read_bytes()
    packed = tmp_path / "multi.img.xz"
    half = len(data) // 2
    packed.write_bytes(lzma.compress(data[:half]) + lzma.compress(data[half:]))
    assert check_integrity(packed) == len(data)
    assert read_all(packed) == data


def test_an_xz_with_stream_padding_is_refused_since_decoding_would_drop_what_follows(
    disk: Path, tmp_path: Path
) -> None:
    packed = tmp_path / "padded.img.xz"
    packed.write_bytes(lzma.compress(disk.read_bytes()[:4096]) + bytes(4) + lzma.compress(b"more"))
    with pytest.raises(ImageError, match="has xz stream padding, which hil cannot decode; recompress it"):
        check_integrity(packed)


def truncated_xz(disk: Path) -> Path:
    packed = compress(disk, ".img.xz")
    packed.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    return packed


def test_a_truncated_xz_is_refused_from_its_missing_footer(disk: Path) -> None:
    with pytest.raises(
        ImageError, match=r"os\.img\.xz is corrupt: no valid xz stream footer \(truncated\?\)$"
    ):
        check_integrity(truncated_xz(disk))


def test_an_xz_whose_index_was_damaged_is_refused(disk: Path) -> None:
    packed = compress(disk, ".img.xz")
    data = bytearray(packed.read_bytes())
    data[-14] ^= 0xFF  # inside the index, just before the 12-byte footer
    packed.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="its xz index is damaged"):
        check_integrity(packed)


@pytest.mark.parametrize(
    ("name", "content", "refusal"),
    [
        ("os.img", b"", "is empty"),
        ("os.img.xz", b"", "is empty"),
        ("os.img.xz", lzma.compress(b""), "is empty: it holds a 0-byte disk"),
        # mtime=0: the bytes (and so the test id) are the same in every xdist worker that collects it.
        ("os.img.xz", gzip.compress(b"disk", mtime=0), "does not start with an xz stream header"),
        ("os.img.gz", lzma.compress(b"disk"), "does not start with a gzip"),
        ("os.zip", b"PK\x03\x04 and then nothing", "not a complete zip archive"),
        ("os.tar", b"disk", "unknown format"),
    ],
)
def test_a_container_that_cannot_hold_a_disk_is_refused(
    tmp_path: Path, name: str, content: bytes, refusal: str
) -> None:
    image = tmp_path / name
    image.write_bytes(content)
    with pytest.raises(ImageError, match=refusal):
        check_integrity(image)


def test_a_truncated_zip_is_refused(disk: Path) -> None:
    packed = compress(disk, ".zip")
    packed.write_bytes(packed.read_bytes()[:-100])
    with pytest.raises(ImageError, match="not a complete zip archive"):
        check_integrity(packed)


def test_image_info_reports_a_truncated_image_as_corrupt_in_one_line(
    disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packed = truncated_xz(disk)
    assert hil_main(["image", "info", str(packed)]) != 0
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == f"hil: ImageError: image {packed} is corrupt: no valid xz stream footer (truncated?)"


def test_a_bmap_made_by_bmaptool_is_found_and_parsed(disk: Path) -> None:
    bmap_path = disk.with_name("os.bmap")
    subprocess.run(["bmaptool", "create", "-o", str(bmap_path), str(disk)], check=True, capture_output=True)
    packed = compress(disk, ".img.xz")
    assert find_bmap(packed) == bmap_path
    bmap = parse_bmap(bmap_path)
    assert bmap.image_size == disk.stat().st_size
    assert 0 < bmap.mapped_bytes < bmap.image_size


def test_a_bmap_whose_contents_were_altered_is_refused(disk: Path) -> None:
    bmap_path = disk.with_name("os.img.bmap")
    subprocess.run(["bmaptool", "create", "-o", str(bmap_path), str(disk)], check=True, capture_output=True)
    bmap_path.write_text(bmap_path.read_text().replace("<BlockSize> 4096", "<BlockSize> 8192"))
    with pytest.raises(ImageError, match="BmapFileChecksum does not match"):
        parse_bmap(bmap_path)


def test_a_second_builder_waits_for_the_first_and_builds_nothing(tmp_path: Path) -> None:
    final = tmp_path / "entry"
    events: list[str] = []
    with one_builder(final) as needed:
        assert needed
        second = threading.Thread(target=lambda: events.append(f"second needed={_needs(final)}"))
        second.start()
        second.join(0.3)
        assert second.is_alive(), "the second builder did not wait for the lock"
        final.mkdir()
        events.append("first built")
    second.join(5)
    assert events == ["first built", "second needed=False"]


def _needs(final: Path) -> bool:
    with one_builder(final) as needed:
        return needed
