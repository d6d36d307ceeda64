"""`hil release gate --missing-from FILE`: CI's reason for each device type that produced no results reaches
the refusal, the summaries and the evidence; the file is read bounded and strictly, the reason is inert, and
no reason ever lets a device type pass."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hil.commands.main import main
from hil.errors import RigConfigError
from hil.images.hash import image_sha256
from hil.release import catalog
from hil.release.missing import MAX_BYTES, MAX_LINES, MAX_REASON, inert, read_missing
from tests.support.release_samples import catalog_of, write_image, write_junit

TYPES = ("qemux86-64", "generic-aarch64")
# An exception's message as hostile as one can be: markup, a terminal escape, a bidi override, a Unicode
# line separator and a tab.
HOSTILE = "taking a rig: <script>alert(1)</script> & \x1b[2J\u202eevil\u2028next\tend"
SHOWN = "taking a rig: <script>alert(1)</script> & \\x1b[2J\\u202eevil\\u2028next\\tend"


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store and a cache of their own; the installed suites are the samples'."""
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HIL_RELEASE_STORE", str(tmp_path / "releases.sqlite"))
    monkeypatch.delenv("HIL_STORE", raising=False)
    monkeypatch.setattr(catalog, "collect", lambda dirs: catalog_of())


def written(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "gate" / "missing.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# ---- reading the file


def test_one_line_per_device_type_as_the_jenkinsfile_writes_it(tmp_path: Path) -> None:
    path = written(tmp_path, "generic-aarch64: missing: no rig labelled 'x' was free for 60 minutes\n"
                             "qemux86-64: missing: its cell never ran: a: missing: b\r\n")  # fmt: skip
    assert read_missing(path, TYPES) == {
        "generic-aarch64": "no rig labelled 'x' was free for 60 minutes",
        "qemux86-64": "its cell never ran: a: missing: b",
    }
    assert read_missing(written(tmp_path, ""), TYPES) == {}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("qemux86-64: missing: x\ngeneric-aarch64 missing x\n",
         r":2: not a 'TYPE: missing: WHY' line: 'generic-aarch64 missing x'$"),
        ("qemux86-64: missing:   \n", r":1: not a 'TYPE: missing: WHY' line"),
        ("\nqemux86-64: missing: x\n", r":1: not a 'TYPE: missing: WHY' line: ''$"),
        # A reason that spans lines: its second line is no line of this file.
        ("qemux86-64: missing: git failed\nstderr: fatal\n",
         r":2: not a 'TYPE: missing: WHY' line: 'stderr: fatal'$"),
        ("qemux86-64: missing: x\nraspberrypi4-64: missing: y\n",
         r":2: device type 'raspberrypi4-64' is not one the release is gated on \(qemux86-64, generic-"),
        ("qemux86-64: missing: x\ngeneric-aarch64: missing: y\nqemux86-64: missing: z\n",
         r":3: device type qemux86-64 is named again \(first on line 1\)$"),
        ("qemux86-\x1b[31m64: missing: x\n", r":1: device type 'qemux86-\\x1b\[31m64' is not one"),
    ],
    ids=["no-missing", "no-reason", "blank-line", "reason-over-two-lines", "unknown-type", "named-twice",
         "escaped-type"],
)  # fmt: skip
def test_every_mistake_is_an_error_naming_the_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    path = written(tmp_path, text)
    with pytest.raises(RigConfigError, match=rf"^--missing-from {re.escape(str(path))}{error}") as raised:
        read_missing(path, TYPES)
    assert "\n" not in str(raised.value)


def test_a_file_too_large_or_too_long_or_not_a_file_is_refused_unread(tmp_path: Path) -> None:
    big = written(tmp_path, "qemux86-64: missing: " + "x" * MAX_BYTES + "\n")
    too_large = rf"^--missing-from {re.escape(str(big))}: larger than the 64 KiB allowed$"
    with pytest.raises(RigConfigError, match=too_large):
        read_missing(big, TYPES)
    long = written(tmp_path, "\n" * (MAX_LINES + 1))
    with pytest.raises(RigConfigError, match=rf"{MAX_LINES + 1} lines, more than the {MAX_LINES} allowed"):
        read_missing(long, TYPES)
    with pytest.raises(RigConfigError, match=r"/gate: not a regular file \(a directory\)$"):
        read_missing(tmp_path / "gate", TYPES)
    with pytest.raises(RigConfigError, match=r"nowhere\.txt: cannot open"):
        read_missing(tmp_path / "nowhere.txt", TYPES)


def test_a_reason_is_inert_and_bounded(tmp_path: Path) -> None:
    path = written(tmp_path, f"qemux86-64: missing: {HOSTILE} ".encode() + b"\xff\n")
    assert read_missing(path, TYPES) == {"qemux86-64": SHOWN + " \ufffd"}
    path = written(tmp_path, f"qemux86-64: missing: {'y' * (MAX_REASON + 20)}\n")
    assert read_missing(path, TYPES)["qemux86-64"] == "y" * MAX_REASON + "... (20 more characters)"
    assert inert("\x00\x7f\x85") == "\\x00\\x7f\\x85"


# ---- through `hil release gate`


@pytest.fixture
def release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Release 1, draft, for qemux86-64 and generic-aarch64; passing results for qemux86-64 alone."""
    x86 = write_image(tmp_path / "images" / "x86.img")
    arm = write_image(tmp_path / "images" / "arm.img", device_type="generic-aarch64")
    write_junit(tmp_path / "results" / "junit.xml", image_sha256=image_sha256(x86))
    assert main(["release", "create", "--version", "1.2.0", "--device-type", *TYPES,
                 "--image", f"qemux86-64={x86}", "--image", f"generic-aarch64={arm}"]) == 0  # fmt: skip
    capsys.readouterr()
    return "1"


def gate(tmp_path: Path, release: str, missing: Path, *more: str) -> int:
    results, report = str(tmp_path / "results"), str(tmp_path / "report")
    return main(["release", "gate", release, "--results", results, "--report-dir", report,
                 "--missing-from", str(missing), *more])  # fmt: skip


def status_and_decisions(release: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, list[dict]]:
    capsys.readouterr()
    main(["release", "show", release])
    status = capsys.readouterr().out.split("status ", 1)[1].split()[0]
    main(["release", "evidence", release])
    return status, json.loads(capsys.readouterr().out)


def test_the_reason_reaches_the_refusal_the_summaries_and_the_evidence(
    tmp_path: Path, release: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = written(tmp_path, f"generic-aarch64: missing: {HOSTILE}\n")
    assert gate(tmp_path, release, missing) == 1
    out = capsys.readouterr().out
    refusal = f"generic-aarch64: missing: {SHOWN}"
    assert f"  - {refusal}\n  - generic-aarch64/boot: no results\n" in out
    assert "REFUSED; store: not finalized" in out and "\x1b" not in out

    report = tmp_path / "report"
    assert f"- {refusal}\n" in (report / "summary.md").read_text()
    page = (report / "summary.html").read_text()
    assert "<script>" not in page and "\x1b" not in page and "\u2028" not in page
    assert "<li>generic-aarch64: missing: taking a rig: &lt;script&gt;alert(1)&lt;/script&gt; &amp; " in page
    evidence = json.loads((report / "evidence.json").read_text())
    assert evidence["missing"] == {"from": str(missing), "device_types": {"generic-aarch64": SHOWN}}
    assert refusal in evidence["decision"]["reasons"]
    assert {c["state"] for c in evidence["decision"]["cells"] if c["device_type"] == "generic-aarch64"} == {
        "missing"
    }

    status, decisions = status_and_decisions(release, capsys)
    assert status == "draft"
    (recorded,) = decisions
    assert recorded["missing"] == evidence["missing"] and refusal in recorded["decision"]["reasons"]


def test_results_for_a_device_type_listed_as_missing_are_contradictory_and_refused(
    tmp_path: Path, release: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Release 2 is qemux86-64 alone, and its results pass: listed as missing all the same, it is refused.
    image = write_image(tmp_path / "images" / "x86.img")
    main(["release", "create", "--version", "1.2.0", "--device-type", "qemux86-64", "--image", str(image)])
    assert main(["release", "gate", "2", "--results", str(tmp_path / "results"), "--dry-run"]) == 0
    missing = written(tmp_path, "qemux86-64: missing: no rig was free\n")
    capsys.readouterr()
    assert gate(tmp_path, "2", missing) == 1
    out = capsys.readouterr().out
    source = tmp_path / "results" / "junit.xml"
    assert (
        f"  - qemux86-64: listed as missing (no rig was free), yet the results hold 1 session(s) of it "
        f"(e.g. {source}): contradictory evidence\n" in out
    )
    assert "qemux86-64   boot            passed" in out and "REFUSED" in out
    status, (recorded,) = status_and_decisions("2", capsys)
    assert status == "draft" and recorded["decision"]["verdict"] == "refused"


@pytest.mark.parametrize(
    "text",
    [b"generic-aarch64 is missing\n", b"raspberrypi4-64: missing: x\n", b"x" * (MAX_BYTES + 1)],
    ids=["malformed", "unknown-type", "oversize"],
)
def test_a_file_the_gate_cannot_read_stops_it_before_it_decides(
    tmp_path: Path, release: str, capsys: pytest.CaptureFixture[str], text: bytes
) -> None:
    missing = written(tmp_path, text)
    assert gate(tmp_path, release, missing) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hil: RigConfigError: --missing-from {missing}") and "\n" not in err, err
    assert not (tmp_path / "report").exists()
    assert status_and_decisions(release, capsys) == ("draft", [])
