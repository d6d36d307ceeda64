"""Fault catalogues as data, injection without mounts (real debugfs on a real ext4 image), and the judge:
a fault counts as caught only when the named test failed saying what the catalogue says."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from hil.errors import FaultError
from hil.faults.catalogue import load_catalogue, load_file, not_applicable, select
from hil.faults.inject import STUB, NotInjected, copy_image, inject, places
from hil.faults.judge import judge
from hil.faults.matrix import Cell, Matrix, render
from hil.faults.model import Fault, NamedFault
from hil.images import edit
from hil.lab.suites import suite_paths
from hil.os.loader import load_profile
from hil.release.catalog import collect
from tests.support.disk_images import MIB, make_disk
from tests.support.release_samples import case_id, write_junit

PROFILES = ("reference", "generic", "rauc", "balenaos")


def _fault(**caught_by: str) -> Fault:
    wanted = {"suite": "boot", "test": "test_boot::test_x", "message": "chronyd' is not running", **caught_by}
    return Fault(description="d", edits=({"stub": "/usr/sbin/chronyd"},), caught_by=wanted)  # type: ignore[arg-type]


def test_every_shipped_fault_names_a_test_its_suite_has() -> None:
    catalog = collect(suite_paths(None))
    for name in PROFILES:
        for named in load_catalogue(load_profile(name)):
            wanted = named.fault.caught_by
            assert wanted.test in catalog.suites[wanted.suite], f"{named.source}: {named.name}"


def test_a_profile_gets_the_faults_of_the_profile_it_extends() -> None:
    rauc = {f.name: f.source for f in load_catalogue(load_profile("rauc"))}
    generic = {f.name for f in load_catalogue(load_profile("generic"))}
    assert generic - {"root-read-only"} < set(rauc) and "updater-wipes-data" in rauc
    assert rauc["time-service-masked"].endswith("generic.yaml")  # inherited as it is
    assert rauc["unit-fails"].endswith("rauc.yaml")  # its own definition wins
    assert "root-read-only" not in rauc  # set to null: taken away


def test_a_users_catalogue_beside_their_profile_adds_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "reference.yaml").write_text(
        "motd-changed:\n  description: a harmless change\n"
        "  edits:\n    - write: {path: /etc/motd, content: hi}\n"
        "  caught_by: {suite: boot, test: 'test_boot::test_boots_to_ssh', message: never}\n"
    )
    monkeypatch.setenv("HIL_OS_DIR", str(tmp_path))
    names = [f.name for f in load_catalogue(load_profile("reference"))]
    assert names[0] == "motd-changed" and "time-service-missing" in names


CATCH = "  caught_by: {suite: boot, test: 'test_a::test_b', message: m}\n"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("  edits: [{stub: /a, remove: /b}]\n" + CATCH, "f.yaml:3: x.edits.0: Value error, an edit is"),
        ("  needs: [time-travel]\n  edits: [{stub: /a}]\n" + CATCH, "f.yaml:3: x.needs"),
        ("  bundles: {good: evil}\n" + CATCH, "f.yaml:3: x.bundles"),
        ("  edits: [{stub: ../etc/passwd}]\n" + CATCH, "f.yaml:3: x.edits.0.stub"),
        ("  edits: [{stub: /a}]\n  caught_by: {suite: boot, test: test_b, message: m}\n",
         "f.yaml:4: x.caught_by.test"),
        ("  edits: [{stub: /a}]\n  caught_by: {suite: boot, test: 'test_a::test_b', message: '('}\n",
         "f.yaml:4: x.caught_by.message"),
        ("  edits: [{stub: /a}]\n  colour: red\n" + CATCH, "f.yaml:4: x.colour: unknown field"),
    ],
)  # fmt: skip
def test_a_wrong_catalogue_names_file_line_and_field(tmp_path: Path, body: str, said: str) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("x:\n  description: d\n" + body)
    with pytest.raises(FaultError) as caught:
        load_file(path)
    assert said in str(caught.value).replace(str(tmp_path) + "/", "")


def test_a_fault_name_outside_the_pattern_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("Bad Name:\n  description: d\n  edits: [{stub: /a}]\n" + CATCH)
    with pytest.raises(FaultError, match=r"f\.yaml:1"):
        load_file(path)


def test_a_fault_is_offered_only_where_the_os_has_what_it_needs() -> None:
    reference, generic = load_profile("reference"), load_profile("generic")
    unit_fails = next(f for f in load_catalogue(generic) if f.name == "unit-fails").fault
    assert not_applicable(unit_fails, generic) is None
    assert "list the services that failed" in str(not_applicable(unit_fails, reference))
    swap = Fault(description="d", bundles={"good": "kernel-panics"}, caught_by=_fault().caught_by)
    assert "A/B root partitions" in str(not_applicable(swap, generic))


def test_an_unknown_fault_name_lists_the_known_ones() -> None:
    catalogue = load_catalogue(load_profile("reference"))
    with pytest.raises(FaultError, match=r"unknown fault nope; .* has: data-not-mounted"):
        select(catalogue, ["nope"])


def _ab_disk(tmp_path: Path) -> Path:
    """A GPT disk: FAT boot, then two ext4 root slots with the same tree (as the reference image lays out
    its first three partitions)."""
    tree = tmp_path / "root"
    (tree / "usr" / "sbin").mkdir(parents=True)
    (tree / "etc" / "init.d").mkdir(parents=True)
    (tree / "usr" / "sbin" / "chronyd").write_bytes(b"\x7fELF real program")
    (tree / "usr" / "sbin" / "chronyd").chmod(0o750)
    (tree / "etc" / "init.d" / "rcS").write_text("mount /mnt/data\nstart services\n")
    (tree / "usr" / "lib").mkdir()
    (tree / "usr" / "lib" / "os-release").write_text("VERSION_ID=1.2.3\n")
    (tree / "etc" / "os-release").symlink_to("../usr/lib/os-release")  # as Debian has it
    disk = tmp_path / "os.img"
    with disk.open("wb") as f:
        f.truncate(16 * MIB)
    table = (
        "label: gpt\nstart=2048, size=4096, type=uefi\n"
        "start=6144, size=8192, type=linux\nstart=14336, size=8192, type=linux\n"
    )
    subprocess.run(["sfdisk", "--quiet", str(disk)], input=table.encode(), check=True)
    fs = tmp_path / "root.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(fs), "4M"], check=True, capture_output=True)
    with disk.open("r+b") as f:
        for start in (6144, 14336):
            f.seek(start * 512)
            f.write(fs.read_bytes())
    return disk


def test_edits_land_in_every_slot_and_read_back(tmp_path: Path) -> None:
    disk = _ab_disk(tmp_path)
    fault = Fault(
        description="d",
        edits=(
            {"stub": "/usr/sbin/chronyd"},
            {"replace": {"path": "/etc/init.d/rcS", "old": "mount /mnt/data\n", "new": ""}},
            {"link": {"path": "/etc/chrony.service", "target": "/dev/null"}},
            {"write": {"path": "/etc/motd", "content": "broken\n", "mode": 0o600}},
            {"write": {"path": "/etc/systemd/system/app.service.d/x.conf", "content": "[Service]\n"}},
        ),
        caught_by=_fault().caught_by,
    )  # type: ignore[arg-type]
    done = inject(fault, load_profile("reference"), disk, disk.parent)
    assert len(done) == 10  # five edits, two slots
    for slot in (2, 3):
        assert edit.read_file(disk, slot, "/usr/sbin/chronyd") == STUB
        assert edit.stat(disk, slot, "/usr/sbin/chronyd") == edit.Entry("regular", 0o750)  # its mode kept
        assert edit.read_file(disk, slot, "/etc/init.d/rcS") == b"start services\n"
        assert edit.stat(disk, slot, "/etc/chrony.service") == edit.Entry("symlink", 0o777)
        assert edit.stat(disk, slot, "/etc/motd") == edit.Entry("regular", 0o600)
        assert edit.read_file(disk, slot, "/etc/systemd/system/app.service.d/x.conf") == b"[Service]\n"
        assert edit.read_file(disk, slot, "/etc/os-release") == b"VERSION_ID=1.2.3\n"  # the link followed


@pytest.mark.parametrize(
    "change",
    [
        {"stub": "/usr/sbin/ntpd"},
        {"remove": "/usr/sbin/ntpd"},
        {"replace": {"path": "/etc/init.d/rcS", "old": "no such line", "new": ""}},
        {"link": {"path": "/mnt/state/x", "target": "/dev/null"}},  # partition 4, which this disk lacks
        {"stub": "/mnt/data/app"},  # the profile puts /mnt/data on partition 5, which this disk lacks
    ],
)
def test_a_fault_that_finds_nothing_to_change_is_not_injected(tmp_path: Path, change: dict) -> None:
    disk = _ab_disk(tmp_path)
    before = disk.read_bytes()
    fault = Fault(description="d", edits=(change,), caught_by=_fault().caught_by)  # type: ignore[arg-type]
    with pytest.raises(NotInjected):
        inject(fault, load_profile("reference"), disk, disk.parent)
    assert disk.read_bytes() == before


def test_a_required_file_missing_is_not_injected(tmp_path: Path) -> None:
    disk = _ab_disk(tmp_path)
    fault = Fault(
        description="d",
        requires=("/usr/lib/systemd/system/chrony.service",),
        edits=({"remove": "/usr/sbin/chronyd"},),
        caught_by=_fault().caught_by,
    )  # type: ignore[arg-type]
    with pytest.raises(NotInjected, match=r"chrony\.service is not in the image"):
        inject(fault, load_profile("reference"), disk, disk.parent)


def test_paths_land_where_the_profile_mounts_them(tmp_path: Path) -> None:
    disk = _ab_disk(tmp_path)
    reference, generic = load_profile("reference"), load_profile("generic")
    assert [(p.number, p.path) for p in places(disk, reference, "/mnt/data/x")] == [(5, "/x")]
    assert [p.number for p in places(disk, reference, "/usr/bin/x")] == [2, 3]
    assert [p.number for p in places(disk, generic, "/usr/bin/x")] == [2, 3]  # no layout: every ext partition


def test_a_copy_keeps_the_original_untouched_and_brings_its_sidecars(tmp_path: Path) -> None:
    disk = (
        make_disk(tmp_path / "src" / "os.img", boot_files={}) if (tmp_path / "src").mkdir() is None else None
    )
    assert disk is not None
    (tmp_path / "src" / "os.bundle.tar").write_bytes(b"bundle")
    (tmp_path / "src" / "os.img.json").write_text("{}")
    copy = copy_image(disk, tmp_path / "copy")
    assert copy.read_bytes() == disk.read_bytes() and copy != disk
    assert (tmp_path / "copy" / "os.bundle.tar").read_bytes() == b"bundle"
    assert (tmp_path / "copy" / "os.img.json").is_symlink()


def test_a_compressed_image_is_copied_raw_so_its_faults_can_be_injected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    disk = _ab_disk(tmp_path)
    packed = tmp_path / "src" / "os.img.gz"
    packed.parent.mkdir()
    with disk.open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    (tmp_path / "src" / "os.img.json").write_text("{}")
    copy = copy_image(packed, tmp_path / "copy")
    assert copy.name == "os.img" and copy.read_bytes() == disk.read_bytes()
    assert (tmp_path / "copy" / "os.img.json").is_symlink()
    fault = Fault(description="d", edits=({"stub": "/usr/sbin/chronyd"},), caught_by=_fault().caught_by)  # type: ignore[arg-type]
    assert len(inject(fault, load_profile("reference"), copy, packed.parent)) == 2  # both slots


def _named(fault: Fault) -> NamedFault:
    return NamedFault(name="chrony-gone", source="f.yaml", fault=fault)


SUITES = {"boot": ["test_x", "test_y"]}
NOT_RUNNING = "AssertionError: the time service 'chronyd' is not running"


@pytest.mark.parametrize(
    ("outcomes", "messages", "outcome", "line"),
    [
        ({"test_x": "failed"}, {"test_x": NOT_RUNNING}, "caught", NOT_RUNNING),
        ({"test_x": "error"}, {"test_x": "failed on setup: 'chronyd' is not running"}, "caught", None),
        ({}, {}, "missed", "passed"),
        ({"test_x": "failed"}, {"test_x": "AssertionError: assert 1 == 0"}, "missed",
         "failed for another reason: AssertionError: assert 1 == 0"),
        ({"test_y": "failed"}, {"test_y": "the time service 'chronyd' is not running"}, "missed", "passed"),
        ({"test_x": "skipped"}, {}, "missed", "skipped: no RTC on this board"),
    ],
)  # fmt: skip
def test_only_the_named_test_failing_for_the_named_reason_catches(
    tmp_path: Path, outcomes: dict, messages: dict, outcome: str, line: str | None
) -> None:
    ids = {case_id("boot", k): v for k, v in outcomes.items()}
    said = {case_id("boot", k): v for k, v in messages.items()}
    write_junit(tmp_path / "junit.xml", suites=SUITES, outcomes=ids, messages=said)
    cell = judge(_named(_fault()), tmp_path, 12.0)
    assert cell.outcome == outcome
    if line is not None:
        assert cell.line == line
    assert cell.also_failed == (("boot test_boot::test_y",) if "test_y" in outcomes else ())


def test_a_test_that_never_ran_or_no_results_is_a_miss(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml", suites={"boot": ["test_other"]})
    assert judge(_named(_fault()), tmp_path, 1.0).line == "the test did not run"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert judge(_named(_fault()), empty, 1.0).outcome == "missed"


def test_the_matrix_passes_only_when_every_applicable_fault_is_caught() -> None:
    matrix = Matrix("qemu", "qemux86-64", "/i.img", "ab", "reference", "run 1", "2026-12-06T00:00:00+00:00")
    matrix.cells = [
        Cell("a", "boot", "caught", "test_boot::test_x", "AssertionError: x"),
        Cell("b", "hostapp_update", "not applicable", "test_update::test_y", "no A/B"),
    ]
    assert matrix.passed and matrix.scores() == {"boot": (1, 1)}
    matrix.cells.append(Cell("c", "boot", "not injected", "test_boot::test_z", "no such file"))
    assert not matrix.passed and matrix.scores() == {"boot": (1, 2)}
    text = render(matrix)
    assert "c: NOT INJECTED (boot test_boot::test_z): no such file" in text
    assert "b: n/a" in text and "score: boot 1/2" in text
    assert not Matrix("q", "d", "i", "s", "p", "c", "t").passed  # nothing tried proves nothing


def test_faults_list_says_what_applies_and_what_must_catch_it(capsys: pytest.CaptureFixture[str]) -> None:
    from hil.commands.main import main

    assert main(["faults", "list", "--os", "reference"]) == 0
    out = capsys.readouterr().out
    assert "OS profile reference:" in out and "hil/os/profiles/faults/reference.yaml" in out
    assert (
        "caught by boot test_boot::test_mounts_are_as_the_os_profile_says: //mnt/data is not mounted/" in out
    )


def test_a_fault_naming_a_test_its_suite_lacks_is_refused_before_anything_boots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hil.commands.main import main

    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "reference.yaml").write_text(
        "ghost:\n  description: d\n  edits: [{stub: /usr/sbin/chronyd}]\n"
        "  caught_by: {suite: boot, test: 'test_boot::test_that_does_not_exist', message: m}\n"
    )
    monkeypatch.setenv("HIL_OS_DIR", str(tmp_path))
    assert main(["faults", "run", "--fault", "ghost", "--artifacts", str(tmp_path / "art")]) == 2
    err = capsys.readouterr().err
    assert (
        "faults/reference.yaml: fault ghost: suite boot has no test test_boot::test_that_does_not_exist"
        in err
    )
    assert main(["faults", "run", "--fault", "nope"]) == 2
    assert "unknown fault nope" in capsys.readouterr().err
    assert not (tmp_path / "art").exists()
