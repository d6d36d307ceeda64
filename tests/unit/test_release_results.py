"""Reading a results directory is bounded: whatever sits behind a `*.xml` name (a FIFO, a device, a
symlink loop, a huge file), the gate answers with a refusal naming it, never a hang or a MemoryError."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from hil.results import model as results_module
from hil.results.read import read_results
from tests.support.release_samples import write_junit

pytestmark = pytest.mark.timeout(60)


def problems_about(path: Path) -> list[str]:
    return [p for p in read_results([path.parent]).problems if p.startswith(str(path))]


def test_a_fifo_named_like_a_report_is_refused_without_blocking(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml")
    os.mkfifo(tmp_path / "fifo.xml")
    assert problems_about(tmp_path / "fifo.xml") == [f"{tmp_path / 'fifo.xml'}: not a regular file (a FIFO)"]


def test_a_symlink_to_a_device_is_refused_without_reading_it(tmp_path: Path) -> None:
    (tmp_path / "zero.xml").symlink_to("/dev/zero")
    (tmp_path / "x-result.json").symlink_to("/dev/urandom")
    found = read_results([tmp_path]).problems
    assert f"{tmp_path / 'zero.xml'}: not a regular file (a device)" in found
    assert any(
        p.startswith(f"{tmp_path / 'x-result.json'}: not a readable allure result (not a regular file")
        for p in found
    )


def test_a_socket_named_like_a_report_is_refused(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s.xml"))
        (problem,) = problems_about(tmp_path / "s.xml")
    assert "cannot open" in problem or "not a regular file" in problem


def test_a_file_larger_than_the_bound_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results_module, "MAX_JUNIT_BYTES", 1 << 20)
    monkeypatch.setattr("hil.results.junit.MAX_JUNIT_BYTES", 1 << 20)
    with open(tmp_path / "huge.xml", "wb") as f:
        f.truncate(3 << 30)  # sparse: 3 GiB on paper, nothing on disk
    assert problems_about(tmp_path / "huge.xml") == [
        f"{tmp_path / 'huge.xml'}: larger than the 1024 KiB allowed"
    ]


def test_a_symlink_loop_and_a_dangling_link_do_not_hang_or_crash(tmp_path: Path) -> None:
    write_junit(tmp_path / "junit.xml")
    (tmp_path / "loop").symlink_to(tmp_path)
    (tmp_path / "gone.xml").symlink_to(tmp_path / "nowhere.xml")
    found = read_results([tmp_path])
    assert len(found.sessions) == 1  # the loop is not followed
    assert any(p.startswith(f"{tmp_path / 'gone.xml'}: cannot open") for p in found.problems)


def test_too_many_entries_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results_module, "MAX_ENTRIES", 50)
    for n in range(60):
        (tmp_path / f"log{n}.txt").write_text("")
    assert (
        f"{tmp_path}: more than 50 entries; point --results at the results"
        in read_results([tmp_path]).problems
    )
