"""Trends of one device type across its recorded runs: boot time by phase, suite durations, pass rate,
as plots, and a line per OS version (release). The gate's summary draws the same boot plot."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from hil.results.model import parse_time
from hil.runs.model import RunSummary
from hil.util.plots import Series, plot_svg

# How many of the newest runs a plot shows: enough for a trend, few enough to read.
SHOWN = 300
REST = "rest of boot to login"


@dataclass(frozen=True)
class VersionRow:
    """One OS version's runs on a device type, summed up."""

    version: str
    runs: int
    median_boot: float | None
    pass_rate: float


def boot_plot(device_type: str, runs: list[RunSummary]) -> str:
    """Boot time per run, stacked by phase where the runs recorded phases."""
    booted = [r for r in runs if r.boot_seconds is not None or r.boot_phases]
    names = sorted({name for r in booted for name in r.boot_phases})
    if not names:
        series = [Series("console login", [(parse_time(r.started), r.boot_seconds or 0.0) for r in booted])]
        return plot_svg(f"{device_type}: boot time (power on to console login)", "seconds", series)
    bands = [Series(n, [(parse_time(r.started), r.boot_phases.get(n, 0.0)) for r in booted]) for n in names]
    rest = [
        (parse_time(r.started), max(0.0, (r.boot_seconds or 0.0) - sum(r.boot_phases.values())))
        for r in booted
    ]
    return plot_svg(
        f"{device_type}: boot time by phase", "seconds", [*bands, Series(REST, rest)], stacked=True
    )


def suite_plot(device_type: str, runs: list[RunSummary]) -> str:
    """Each suite's duration per run."""
    suites = sorted({s for r in runs for s in r.suites if s})
    series = [
        Series(s, [(parse_time(r.started), r.suites[s]) for r in runs if s in r.suites]) for s in suites
    ]
    return plot_svg(f"{device_type}: suite durations", "seconds", series)


def pass_plot(device_type: str, runs: list[RunSummary]) -> str:
    """Passed over passed and failed, per run."""
    series = [Series("pass rate", [(parse_time(r.started), 100 * r.pass_rate) for r in runs if r.total])]
    return plot_svg(f"{device_type}: pass rate", "% of tests run", series)


def versions(runs: list[RunSummary]) -> list[VersionRow]:
    """Per OS version: how many runs, their median boot time and pass rate; newest version first."""
    by_version: dict[str, list[RunSummary]] = {}
    for r in runs:
        by_version.setdefault(r.os_version or "(unversioned)", []).append(r)
    rows = []
    for version, group in by_version.items():
        boots = [r.boot_seconds for r in group if r.boot_seconds is not None]
        ran = sum(r.passed + r.failed for r in group)
        rows.append(VersionRow(version, len(group), statistics.median(boots) if boots else None,
                               sum(r.passed for r in group) / ran if ran else 0.0))  # fmt: skip
    return sorted(rows, key=lambda row: max(r.id for r in by_version[row.version]), reverse=True)
