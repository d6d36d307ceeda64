"""Fault matrices on `hil serve`, over HTTP on a real sqlite store: the Faults page lists the newest matrix
of each image and OS profile with its verdict and scores, a matrix's page shows every cell with what the DUT
said escaped, an unknown matrix is not found, the trends page plots each suite's score (or says how to
make a matrix), and every page reads a bounded number of matrices."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.faults.matrix import Cell, Matrix
from hil.faults.record import FaultStore
from hil.runs.store import RunStore
from hil.web import faults
from tests.support.dashboard_server import serving
from tests.support.release_samples import IMAGE_SHA256, OTHER_SHA256
from tests.unit.test_dashboard import fetch
from tests.unit.test_trends import points, texts

HOSTILE = "<script>alert(1)</script>"
X, Y, T = "test_boot::test_x", "test_networking::test_y", "test_time_sync::test_t"


def matrix(sha: str, profile: str, started: str, cells: list[Cell], image: str = "/images/os.img") -> Matrix:
    return Matrix("qemu-x86_64", "qemux86-64", image, sha, profile, "run r1", started,
                  started.replace("T10:", "T11:"), cells)  # fmt: skip


def fill(store: Path) -> list[int]:
    """Two matrices of one image (the second catches all) and one of another (with a hostile DUT line)."""
    RunStore(store)  # an empty store, as the first `hil run` leaves it
    recorded = FaultStore(store)
    first = [Cell("chrony-gone", "boot", "caught", X, "AssertionError: chrony", 3.0),
             Cell("dns-gone", "networking", "missed", Y, "the test passed", 4.0)]  # fmt: skip
    second = [Cell("chrony-gone", "boot", "caught", X, "AssertionError: chrony", 3.0),
              Cell("dns-gone", "networking", "caught", Y, "AssertionError: dns", 5.0),
              Cell("rauc-gone", "hostapp_update", "not applicable", T, "the OS lacks A/B", 0.0)]  # fmt: skip
    also = (f"boot {HOSTILE}", "boot test_boot::z")
    other = [Cell("kernel-quiet", "boot", "missed", X, HOSTILE, 61.0, also),
             Cell("ntp-blocked", "networking", "not injected", Y, "no such file: /etc/ntp.conf", 1.0),
             Cell("clock-skew", "time_sync", "caught", T, "AssertionError: skew", 7.0)]  # fmt: skip
    return [
        recorded.record(matrix(IMAGE_SHA256, "reference", "2026-12-01T10:00:00+00:00", first)),
        recorded.record(matrix(IMAGE_SHA256, "reference", "2026-12-03T10:00:00+00:00", second)),
        recorded.record(matrix(OTHER_SHA256, "generic", "2026-12-05T10:00:00+00:00", other, HOSTILE)),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int]]]:
    """The dashboard of a store holding the three matrices of `fill`; its URL and the matrices' numbers."""
    store = tmp_path_factory.mktemp("faults") / "store.sqlite"
    numbers = fill(store)
    with serving(store, artifact_roots=[]) as url:
        yield url, numbers


def row(page: str, number: int) -> str:
    found = re.search(rf'<tr id="matrix-{number}"[^>]*>(.*?)</tr>', page, re.DOTALL)
    assert found, f"no row of matrix {number}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1)))


def test_the_faults_page_lists_each_images_newest_matrix_with_its_verdict_and_scores(
    served: tuple[str, list[int]],
) -> None:
    url, (first, second, other) = served
    status, _, page = fetch(f"{url}/faults")
    assert status == 200, page[-2000:]
    listed = re.findall(r'<tr id="matrix-(\d+)"', page)
    assert listed == [str(other), str(second)] and str(first) not in listed  # newest first, one an image
    newest = row(page, second)
    assert "/images/os.img" in newest and IMAGE_SHA256[:12] in newest and "reference" in newest
    assert "qemu-x86_64" in newest and "2026-12-03T10:00:00+00:00" in newest
    assert (
        "every applicable fault caught" in newest and "2 of 2 caught" in newest and "not every" not in newest
    )
    assert "boot 1 of 1" in newest and "networking 1 of 1" in newest and "hostapp_update" not in newest
    worse = row(page, other)
    assert OTHER_SHA256[:12] in worse and "generic" in worse
    assert "not every applicable fault caught" in worse and "1 of 3 caught" in worse
    assert "boot 0 of 1" in worse and "networking 0 of 1" in worse and "time_sync 1 of 1" in worse
    assert f'href="/faults/{second}"' in page and f'href="/faults/{other}"' in page
    assert HOSTILE not in page and html.escape(HOSTILE, quote=False) in page  # the image's name, escaped
    _, _, overview = fetch(f"{url}/")
    assert '<a href="/faults">Faults</a>' in overview  # in the navigation, as the other pages


def test_a_matrix_page_shows_every_cell_and_escapes_what_the_dut_said(served: tuple[str, list[int]]) -> None:
    url, (_, _, other) = served
    status, _, page = fetch(f"{url}/faults/{other}")
    assert status == 200, page[-2000:]
    assert HOSTILE not in page and "<script" not in page
    cells = re.findall(r'<tr class="fault ([a-z-]+)" id="fault-\d+">(.*?)</tr>', page, re.DOTALL)
    assert [outcome for outcome, _ in cells] == ["missed", "not-injected", "caught"]
    missed, not_injected, caught = (re.sub(r"\s+", " ", c) for _, c in cells)
    escaped = html.escape(HOSTILE, quote=False)
    assert "kernel-quiet" in missed and X in missed and f'class="reason">{escaped}<' in missed
    assert ">61<" in missed and f"boot {escaped}" in missed and "boot test_boot::z" in missed
    assert "ntp-blocked" in not_injected and "no such file: /etc/ntp.conf" in not_injected
    assert (
        "clock-skew" in caught and "time_sync" in caught and T in caught and "AssertionError: skew" in caught
    )
    assert "1 of 3 caught" in page and "not every applicable fault caught" in page
    assert OTHER_SHA256[:16] in page and "generic" in page and 'href="/runs/r1"' in page  # the control run


def test_an_unknown_matrix_is_not_found(served: tuple[str, list[int]]) -> None:
    url, _ = served
    for number in ("999", "0", "-1", "abc", "%3Cscript%3E", "%C2%B2", "9" * 30):
        status, _, page = fetch(f"{url}/faults/{number}")
        assert status == 404 and "is not recorded" in page and "<script>" not in page, number


def test_the_trends_page_plots_each_suites_score_per_matrix(served: tuple[str, list[int]]) -> None:
    url, _ = served
    status, _, page = fetch(f"{url}/trends")
    assert status == 200, page[-2000:]
    section = re.search(r'<section class="trend" id="faults">(.*?)</section>', page, re.DOTALL)
    assert section and "No fault matrix" not in section.group(1) and "3 matrices" in section.group(1)
    svg = re.search(r"<svg.*?</svg>", section.group(1), re.DOTALL)
    assert svg and 'aria-label="fault score per suite"' in svg.group(0)
    shown = texts(svg.group(0))
    assert {"boot", "networking", "time_sync"} <= set(
        shown
    ) and "hostapp_update" not in shown  # never applicable
    assert "100" in shown and "120" not in shown  # a share's axis: 0 to 100
    # boot and networking in all three matrices, time_sync in one; each also in the legend
    assert points(svg.group(0)) == [4, 4, 2]


def test_with_no_matrix_the_pages_say_how_to_make_one(tmp_path: Path) -> None:
    RunStore(tmp_path / "store.sqlite")
    with serving(tmp_path / "store.sqlite", artifact_roots=[]) as url:
        for path in ("/faults", "/trends"):
            status, _, page = fetch(url + path)
            assert status == 200 and "No fault matrix recorded yet" in page, path
            assert "<code>hil faults run --rig RIG</code>" in page and "<svg" not in page, path


def test_the_pages_read_no_more_matrices_than_their_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store.sqlite"
    RunStore(store)
    recorded = FaultStore(store)
    cell = [Cell("chrony-gone", "boot", "caught", X, "AssertionError: chrony", 3.0)]
    numbers = [
        recorded.record(matrix(f"{i:064x}", "reference", f"2026-12-0{i}T10:00:00+00:00", cell))
        for i in range(1, 6)
    ]
    monkeypatch.setattr(faults, "LISTED", 2)
    monkeypatch.setattr(faults, "SHOWN", 3)
    with serving(store, artifact_roots=[]) as url:
        _, _, listed = fetch(f"{url}/faults")
        _, _, trend = fetch(f"{url}/trends")
    assert re.findall(r'<tr id="matrix-(\d+)"', listed) == [str(n) for n in numbers[:-3:-1]]  # the newest two
    assert "The newest 2 images and OS profiles are shown" in listed
    assert "3 matrices; the plot shows at most the newest 3" in trend
    svg = re.search(r'<section class="trend" id="faults">.*?(<svg.*?</svg>)', trend, re.DOTALL)
    assert svg and points(svg.group(1)) == [3 + 1]  # the newest three, and the legend's
