"""Trend plots with one or two runs: each run is a point that shows (a stacked boot plot too), on a time
axis that fits the runs (their day's hours, not years); the fault score plot likewise, on an axis of
shares. The plot's texts are read from matplotlib's comments in the SVG, which carry each text it drew as
paths."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from hil.faults.matrix import Cell, Matrix
from hil.runs import trends
from hil.runs.model import RunSummary
from hil.web.faults import score_plot

RUN = RunSummary(
    id=1, run_id="r1", started="2026-11-22T06:00:00+00:00", finished="2026-11-22T06:20:00+00:00",
    rig="bench", device_type="qemux86-64", image="os.img", image_sha256="ab" * 32, os_version="1.0",
    os_profile="reference", exitstatus=0, passed=9, failed=1, skipped=0, seconds=1200.0, boot_seconds=21.5,
    boot_phases={"kernel": 2.5, "firmware": 4.0}, suites={"boot": 300.0, "networking": 900.0},
)  # fmt: skip
SECOND = replace(RUN, id=2, run_id="r2", started="2026-11-22T06:40:00+00:00", passed=10, failed=0)


def texts(svg: str) -> list[str]:
    """The texts the plot drew (tick labels, the date offset, title, legend), in order."""
    return [t.strip() for t in re.findall(r"<!--(.*?)-->", svg, re.DOTALL)]


def points(svg: str) -> list[int]:
    """For each point marker the plot defines (a circle), how often it is drawn (its points, its legend)."""
    circles = [i for i, d in re.findall(r'<path id="(p\d+-m[0-9a-f]+)" d="([^"]*)"', svg) if " C " in d]
    return [svg.count(f'xlink:href="#{i}"') for i in circles]


def plots(runs: list[RunSummary]) -> dict[str, str]:
    return {
        "boot": trends.boot_plot("qemux86-64", runs),
        "suites": trends.suite_plot("qemux86-64", runs),
        "pass": trends.pass_plot("qemux86-64", runs),
    }


@pytest.mark.parametrize("runs", [[RUN], [RUN, SECOND]], ids=["one run", "two runs"])
def test_each_run_is_a_point_on_an_axis_of_the_runs_day(runs: list[RunSummary]) -> None:
    for name, svg in plots(runs).items():
        series = {"boot": 3, "suites": 2, "pass": 1}[name]  # kernel, firmware, the rest; two suites; one
        assert points(svg) == [len(runs) + 1] * series, name  # each run's point, and the legend's
        shown = texts(svg)
        assert "2026-Nov-22" in shown, (name, shown)  # the date, once, as the axis's offset
        ticks = [t for t in shown if re.fullmatch(r"\d\d:\d\d", t)]
        assert len(ticks) >= 2 and all("05:00" <= t <= "08:00" for t in ticks), (name, ticks)
        assert not [t for t in shown if re.search(r"\b20(2[0-57-9]|3\d)\b", t)], (name, shown)  # no years


def test_many_runs_draw_bands_and_lines() -> None:
    runs = [replace(RUN, id=i, started=f"2026-11-{10 + i:02d}T06:00:00+00:00") for i in range(1, 8)]
    drawn = plots(runs)
    assert points(drawn["boot"]) == []  # stacked bands, no points
    assert "Nov" in " ".join(texts(drawn["pass"])) and "2026" in " ".join(texts(drawn["pass"]))


def test_a_fault_matrix_is_a_point_per_suite_on_an_axis_of_its_day_and_of_shares() -> None:
    cells = [Cell("a", "boot", "caught", "t::x"), Cell("b", "boot", "missed", "t::y"),
             Cell("c", "networking", "caught", "t::z"),
             Cell("d", "update", "not applicable", "t::u")]  # fmt: skip
    matrix = Matrix("q", "qemux86-64", "os.img", "ab" * 32, "reference", "run r1", RUN.started, cells=cells)
    undated = replace(matrix, started="not a time")  # nowhere to put it on the axis: left out
    svg = score_plot([matrix, undated])
    assert points(svg) == [2, 2]  # boot (50%) and networking (100%), each a point and its legend's
    shown = texts(svg)
    assert "boot" in shown and "networking" in shown and "update" not in shown  # update: none applicable
    ticks = [t for t in shown if re.fullmatch(r"\d\d:\d\d", t)]
    assert len(ticks) >= 2 and all("05:00" <= t <= "07:00" for t in ticks), ticks
    assert [t for t in shown if re.fullmatch(r"-?\d+", t)] == ["0", "20", "40", "60", "80", "100"]
