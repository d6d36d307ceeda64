"""`hil release ...` from the command line: create (naming the image), list, show, gate (exit 0 final,
1 refused), evidence; every mistake a one-line error."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from hil.commands.main import main
from hil.commands.release import add_parser
from hil.errors import HilError, RigConfigError
from hil.images.hash import image_sha256
from hil.release import catalog
from hil.runs.record import SessionInfo, run_from_junit
from hil.runs.store import RunStore
from tests.support.release_samples import SUITES, case_id, catalog_of, write_image, write_junit


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """A store and a cache of its own; the installed suites hold exactly the tests the samples report
    (collected for real where a test asks for `installed_suites`, else listed directly: it takes seconds)."""
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HIL_RELEASE_STORE", str(tmp_path / "releases.sqlite"))
    if "installed_suites" not in request.fixturenames:
        monkeypatch.setattr(catalog, "collect", lambda dirs: catalog_of())


@pytest.fixture
def installed_suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Suites on disk, found through HIL_SUITES_DIR, whose tests are the samples'."""
    root = tmp_path / "installed" / "suites"
    for suite, names in SUITES.items():
        module = root / suite / f"test_{suite}.py"
        module.parent.mkdir(parents=True)
        module.write_text("".join(f"def {name}():\n    pass\n\n\n" for name in names))
    monkeypatch.setenv("HIL_SUITES_DIR", str(root))
    return root


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return write_image(tmp_path / "images" / "hil-1.2.0.img")


def hil(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="hil")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_create_list_gate_show_and_evidence(
    tmp_path: Path, image: Path, installed_suites: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_junit(tmp_path / "results" / "junit.xml", image_sha256=image_sha256(image))
    assert (
        hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64", "--image", str(image))
        == 0
    )
    out = capsys.readouterr().out
    assert "release 1: version 1.2.0, qemux86-64, draft" in out
    assert f"  qemux86-64: {image} (sha256 {image_sha256(image)})" in out

    assert hil("release", "gate", "1", "--results", str(tmp_path / "results")) == 0
    out = capsys.readouterr().out
    assert "qemux86-64   boot            passed  5" in out
    assert "release 1 (version 1.2.0): FINAL; store: finalized" in out

    assert hil("release", "list") == 0
    assert "   1  final        1.2.0             qemux86-64" in capsys.readouterr().out
    assert hil("release", "show", "1") == 0
    assert "decision 1" in capsys.readouterr().out
    assert hil("release", "evidence", "1") == 0
    (decision,) = json.loads(capsys.readouterr().out)
    assert decision["outcome"] == "finalized"
    assert decision["suites"]["source"] == ", ".join(str(installed_suites / s) for s in sorted(SUITES))


def test_gate_exits_1_with_the_reason_when_refused(
    tmp_path: Path, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = case_id("hostapp_update", "test_rolls_back_a_broken_root")
    write_junit(
        tmp_path / "results" / "junit.xml", outcomes={failing: "failed"}, image_sha256=image_sha256(image)
    )
    hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64", "--image", str(image))
    report = tmp_path / "report"
    assert (
        hil("release", "gate", "1", "--results", str(tmp_path / "results"), "--report-dir", str(report)) == 1
    )
    out = capsys.readouterr().out
    assert f"  - qemux86-64/hostapp_update: {failing} failed: AssertionError: assert 1 == 0" in out
    assert "REFUSED; store: not finalized" in out
    assert (report / "summary.html").is_file()
    hil("release", "show", "1")
    assert "status draft" in capsys.readouterr().out


def test_a_run_with_deselected_tests_is_refused_against_the_installed_suites(
    tmp_path: Path, image: Path, installed_suites: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_junit(tmp_path / "results" / "junit.xml", image_sha256=image_sha256(image),
                suites={**SUITES, "networking": SUITES["networking"][:2]})  # fmt: skip
    hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64", "--image", str(image))
    assert hil("release", "gate", "1", "--results", str(tmp_path / "results")) == 1
    assert "(test_networking::test_reaches_the_host); a run with -k or --deselect" in capsys.readouterr().out


def test_gate_dry_run_reports_without_finalizing(
    tmp_path: Path, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_junit(tmp_path / "results" / "junit.xml", image_sha256=image_sha256(image))
    hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64", "--image", str(image))
    assert hil("release", "gate", "1", "--results", str(tmp_path / "results"), "--dry-run") == 0
    assert "store: dry run" in capsys.readouterr().out
    hil("release", "evidence", "1")
    assert json.loads(capsys.readouterr().out) == []


def test_a_bad_policy_is_a_config_error(tmp_path: Path, image: Path) -> None:
    (tmp_path / "gate.yaml").write_text("device_types: []\n")
    hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64", "--image", str(image))
    with pytest.raises(RigConfigError, match=r"gate\.yaml:1: device_types: "):
        hil("release", "gate", "1", "--results", str(tmp_path), "--policy", str(tmp_path / "gate.yaml"))


def test_store_flag_overrides_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.sqlite"
    image = write_image(tmp_path / "hil-9.9.9.img", version="9.9.9")
    hil("release", "create", "--store", str(other), "--version", "9.9.9", "--device-type", "qemux86-64",
        "--image", str(image))  # fmt: skip
    capsys.readouterr()
    hil("release", "list")
    assert "9.9.9" not in capsys.readouterr().out
    hil("release", "list", "--store", str(other))
    assert "9.9.9" in capsys.readouterr().out


# A release names its image; the image must agree with what the release says it is.


@pytest.mark.parametrize(
    ("written", "argv", "why"),
    [
        ({"device_type": "raspberrypi4-64"}, [], "is built for raspberrypi4-64, not qemux86-64"),
        ({"version": "1.1.9"}, [], "says it is version 1.1.9, not 1.2.0"),
        ({}, ["--device-type", "qemux86-64", "raspberrypi4-64"], "say which device type it is for"),
    ],
)
def test_create_refuses_an_image_that_does_not_fit(
    tmp_path: Path, written: dict, argv: list, why: str
) -> None:
    image = write_image(tmp_path / "disk.img", **written)
    args = ["release", "create", "--version", "1.2.0", *(argv or ["--device-type", "qemux86-64"])]
    with pytest.raises(HilError, match=why):
        hil(*args, "--image", str(image))


def test_create_names_one_image_per_device_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x86 = write_image(tmp_path / "x86.img")
    rpi = write_image(tmp_path / "rpi.img", device_type="raspberrypi4-64")
    hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64", "raspberrypi4-64",
        "--image", f"qemux86-64={x86}", "--image", f"raspberrypi4-64={rpi}")  # fmt: skip
    out = capsys.readouterr().out
    assert f"qemux86-64: {x86}" in out and f"raspberrypi4-64: {rpi}" in out


def test_create_needs_an_image(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64")
    assert "--image" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["release", "create", "--version", "", "--device-type", "qemux86-64", "--image", "x.img"],
        ["release", "create", "--version", "1.2.0", "--device-type", "", "--image", "x.img"],
        ["release", "show", "9" * 5000],
        ["release", "gate", "-1", "--results", "."],
        ["release", "list", "--store", "/nonexistent-folder/releases.sqlite"],
    ],
    ids=["empty-version", "empty-device-type", "huge-id", "negative-id", "missing-store-folder"],
)
def test_mistakes_are_one_line_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_an_unwritable_report_dir_is_one_line_and_changes_nothing(
    tmp_path: Path, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_junit(tmp_path / "results" / "junit.xml", image_sha256=image_sha256(image))
    hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64", "--image", str(image))
    (tmp_path / "file").write_text("")
    argv = [
        "release",
        "gate",
        "1",
        "--results",
        str(tmp_path / "results"),
        "--report-dir",
        str(tmp_path / "file" / "r"),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "release 1 was left as it was" in err
    hil("release", "show", "1")
    assert "status draft" in capsys.readouterr().out


# One lab, many agents: a gate judges the runs a CI build recorded in the shared store, by its build tag.


def record_run(tmp_path: Path, run_id: str, build_tag: str, **junit: object) -> None:
    path = write_junit(tmp_path / "runs" / run_id / "junit.xml", run_id=run_id, **junit)  # type: ignore[arg-type]
    info = SessionInfo(run_id, "", "qemux86-64-1", "qemux86-64", path.parent, build_tag=build_tag)
    RunStore().record(*run_from_junit(path, info))


def test_gate_build_tag_judges_the_runs_of_that_build_and_refuses_a_tag_with_none(
    tmp_path: Path, image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sha = image_sha256(image)
    failing = case_id("boot", "test_ssh_answers")
    record_run(tmp_path, "older", "jenkins-hil-41", image_sha256=sha, outcomes={failing: "failed"})
    record_run(tmp_path, "ours", "jenkins-hil-42", image_sha256=sha)
    hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64", "--image", str(image))
    capsys.readouterr()

    assert main(["release", "gate", "1", "--build-tag", "jenkins-hil-99"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "build tag jenkins-hil-99 names no run recorded in" in err, err
    assert hil("release", "gate", "1", "--build-tag", "jenkins-hil-41", "--dry-run") == 1
    assert f"{failing} failed" in capsys.readouterr().out

    assert hil("release", "gate", "1", "--build-tag", "jenkins-hil-42") == 0
    assert "release 1 (version 1.2.0): FINAL; store: finalized" in capsys.readouterr().out
    hil("release", "evidence", "1")
    (decision,) = json.loads(capsys.readouterr().out)
    assert decision["results"]["build_tag"] == "jenkins-hil-42"
    assert [run.split(" ")[1] for run in decision["results"]["runs"]] == ["ours"]

    assert main(["runs", "list", "--build-tag", "jenkins-hil-42"]) == 0
    listed = capsys.readouterr().out
    assert "ours" in listed and "older" not in listed
    with pytest.raises(SystemExit):
        main(["release", "gate", "1", "--build-tag", " "])
    assert "a build tag is not empty" in capsys.readouterr().err
