"""`hil release ...` from the command line: create, list, show, gate (exit 0 final, 1 refused), evidence."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from release_samples import SUITES, case_id, write_junit

from hil.errors import RigConfigError
from hil.release.cli import add_parser


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HIL_RELEASE_STORE", str(tmp_path / "releases.sqlite"))


def hil(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="hil")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_create_list_gate_show_and_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_junit(tmp_path / "results" / "junit.xml")
    assert hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64") == 0
    assert "release 1: version 1.2.0, qemux86-64, draft" in capsys.readouterr().out

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


def test_gate_exits_1_with_the_reason_when_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = case_id("hostapp_update", "test_rolls_back_a_broken_root")
    write_junit(tmp_path / "results" / "junit.xml", outcomes={failing: "failed"})
    hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64")
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


def test_gate_dry_run_reports_without_finalizing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_junit(tmp_path / "results" / "junit.xml", suites={**SUITES, "boot": SUITES["boot"][:4]})
    hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64")
    assert hil("release", "gate", "1", "--results", str(tmp_path / "results"), "--dry-run") == 1
    assert "store: dry run" in capsys.readouterr().out
    hil("release", "evidence", "1")
    assert json.loads(capsys.readouterr().out) == []


def test_a_bad_policy_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "gate.yaml").write_text("device_types: []\n")
    hil("release", "create", "--version", "1.2.0", "--device-type", "qemux86-64")
    with pytest.raises(RigConfigError, match=r"gate\.yaml:1: device_types: "):
        hil("release", "gate", "1", "--results", str(tmp_path), "--policy", str(tmp_path / "gate.yaml"))


def test_store_flag_overrides_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.sqlite"
    hil("release", "create", "--store", str(other), "--version", "9.9.9", "--device-type", "qemux86-64")
    capsys.readouterr()
    hil("release", "list")
    assert "9.9.9" not in capsys.readouterr().out
    hil("release", "list", "--store", str(other))
    assert "9.9.9" in capsys.readouterr().out
