"""Trend plots as inline SVG: drawn by matplotlib's SVG backend on the server, no script, no network.

The SVG is rewritten so that it needs no CSS at all (every `style` becomes presentation attributes, text is
drawn as paths): Jenkins' HTML publisher serves reports under a Content-Security-Policy that drops inline
styles, and a plot must survive it as the gate's tables do. Ids are prefixed per plot, so several plots
inlined in one page never share one. matplotlib's comments stay: they carry each text drawn as paths
(tick labels, title), so the plot's words can still be read, and searched, in its source.

A plot fits its time axis to the data (a single run would otherwise sit on an axis of years), and with
few runs draws each one as a clear point: a line or a stacked band needs at least two, a trend three.
"""

from __future__ import annotations

import io
import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_SVG = "http://www.w3.org/2000/svg"
_XLINK = "http://www.w3.org/1999/xlink"
_HREF = f"{{{_XLINK}}}href"
_URL = re.compile(r"url\(#([^)]+)\)")
_counter = itertools.count(1)
# matplotlib's one global rule (`*{stroke-linejoin: round; stroke-linecap: butt}`), as inherited attributes.
_ROOT_DEFAULTS = {"stroke-linejoin": "round", "stroke-linecap": "butt"}
# Fewer runs than this are drawn as clear points (a stacked plot as points at each band's top).
FEW = 3
# The time either side of a single moment on the time axis: one run shows its hour, not years.
SINGLE_PAD = timedelta(minutes=30)

ET.register_namespace("", _SVG)
ET.register_namespace("xlink", _XLINK)


@dataclass(frozen=True)
class Series:
    """One line (or band, when stacked) of a plot: a label and its points (time, value)."""

    label: str
    points: Sequence[tuple[datetime, float]]


def plot_svg(
    title: str,
    ylabel: str,
    series: Sequence[Series],
    *,
    stacked: bool = False,
    width: float = 7.5,
    ylim: tuple[float, float] | None = None,
) -> str:
    """A time plot of `series` as a self-contained `<svg>` element (stacked bands when `stacked`); the
    value axis spans `ylim` (a share's whole range), by default from 0 to what fits the data."""
    # At call time, for start-up speed: matplotlib takes about a second to import.
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 2.6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    drawn = [s for s in series if s.points]
    if not drawn:
        ax.text(
            0.5, 0.5, "no recorded runs yet", ha="center", va="center", transform=ax.transAxes, fontsize=9
        )
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        _draw(ax, drawn, stacked)
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        ax.set_xlim(*time_limits([t for s in drawn for t, _ in s.points]))  # type: ignore[arg-type]
        ax.set_ylim(*(ylim or (0, None)))
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    return without_css(out.getvalue(), f"p{next(_counter)}-", title)


def _draw(ax: Axes, drawn: Sequence[Series], stacked: bool) -> None:
    """The series on `ax`: lines with points; stacked bands; with few runs, points that show (stacked:
    each band's top, so the total is the highest point)."""
    few = len({t for s in drawn for t, _ in s.points}) < FEW
    if stacked and not few:
        # matplotlib's date converter takes the datetimes as they are; its stubs know only numbers, arrays.
        times = [t for t, _ in drawn[0].points]
        ax.stackplot(times, *[[v for _, v in s.points] for s in drawn],  # type: ignore[arg-type]
                     labels=[s.label for s in drawn], alpha=0.85)  # fmt: skip
        return
    below = [0.0] * len(drawn[0].points)
    for s in drawn:
        times, values = [t for t, _ in s.points], [v for _, v in s.points]
        if stacked:  # every band has a value at every run: each point sits on the bands below
            values = below = [b + v for b, v in zip(below, values, strict=True)]
        ax.plot(times, values, label=s.label, linewidth=1.2, marker="o" if few else ".",  # type: ignore[arg-type]
                markersize=6 if few else 3)  # fmt: skip


def time_limits(times: Sequence[datetime]) -> tuple[datetime, datetime]:
    """The time axis's ends: the data's span and 5% either side; SINGLE_PAD around a single moment."""
    first, last = min(times), max(times)
    pad = (last - first) * 0.05 or SINGLE_PAD
    return first - pad, last + pad


def without_css(svg: str, prefix: str, title: str) -> str:
    """matplotlib's SVG with no `<style>`, no `style=` attribute, no metadata, ids prefixed, and a title."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))  # the texts drawn as paths
    root = ET.fromstring(svg.encode(), parser=parser)
    for parent in root.iter():
        for child in list(parent):
            if child.tag in (f"{{{_SVG}}}metadata", f"{{{_SVG}}}style"):
                parent.remove(child)
    for element in root.iter():
        if style := element.attrib.pop("style", None):
            for declaration in style.split(";"):
                name, _, value = declaration.partition(":")
                if name.strip() and value.strip():
                    element.set(name.strip(), value.strip())
        if "id" in element.attrib:
            element.set("id", prefix + element.get("id", ""))
        href = element.get(_HREF, "")
        if href.startswith("#"):
            element.set(_HREF, f"#{prefix}{href[1:]}")
        for name, value in element.attrib.items():
            if "url(#" in value:
                element.set(name, _URL.sub(lambda m: f"url(#{prefix}{m.group(1)})", value))
    for name, value in _ROOT_DEFAULTS.items():
        root.set(name, value)
    root.set("role", "img")
    root.set("aria-label", title)
    label = ET.Element(f"{{{_SVG}}}title")
    label.text = title
    root.insert(0, label)
    return ET.tostring(root, encoding="unicode")
