"""The fault matrices on the dashboard: `hil faults run` records each in the store (hil.faults.record);
/faults lists the newest of each image and OS profile, /faults/{number} shows one a row a fault (what the
summary.html of the run shows, in the dashboard's look), and the trends page plots each suite's score, the
share of its applicable faults it caught, over the recorded matrices.

Every page reads a bounded number of matrices (LISTED, SHOWN). A fault's line is what a DUT printed, or a
test said of it: hostile text, shown only through the templates, which escape it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hil.faults.matrix import Matrix
from hil.results.model import NEVER, parse_time
from hil.runs import trends
from hil.util.plots import Series, plot_svg
from hil.web.pages import Dashboard, dashboard, page

# The Faults page lists the newest matrix of at most this many images and OS profiles.
LISTED = 100
# The score plot shows this many of the newest matrices, as a trend plot shows that many runs.
SHOWN = trends.SHOWN
# The score plot's value axis, in %.
SCORE_AXIS = (-5.0, 105.0)
# What makes a matrix, for a store that has none.
HINT = "hil faults run --rig RIG"


def table() -> list[BaseRoute]:
    """The fault pages' routes."""
    return [Route("/faults", fault_list), Route("/faults/{number}", fault_matrix)]


async def fault_list(request: Request) -> Response:
    """The newest matrix of each image and OS profile, newest first: its verdict and each suite's score."""
    matrices = dashboard(request).faults.latest(limit=LISTED)
    return page(request, "faults.html", matrices=matrices, listed=LISTED, hint=HINT)


async def fault_matrix(request: Request) -> Response:
    """One matrix: what ran, the verdict, a row a fault with its evidence, and each suite's score."""
    number = request.path_params["number"]
    # ASCII digits only ("²" is a digit int() refuses), and few enough for any store's integer.
    wanted = int(number) if number.isascii() and number.isdigit() and len(number) <= 18 else 0
    found = dashboard(request).faults.get(wanted) if wanted else None
    if found is None:
        raise HTTPException(404, f"fault matrix {number} is not recorded")
    return page(request, "fault_matrix.html", m=found)


def score_section(board: Dashboard) -> dict[str, Any]:
    """The trends page's fault scores: the plot (drawn once per newest matrix) and how many matrices it
    shows, or none and the command that makes one."""
    newest = board.faults.newest()
    if not newest:
        return {"plot": "", "matrices": 0, "shown": SHOWN, "hint": HINT}
    if newest not in board.fault_plots:
        history = board.faults.history(limit=SHOWN)
        board.fault_plots.clear()  # matrices are only added: an older plot is never asked for again
        board.fault_plots[newest] = (score_plot(history), len(history))
    plot, count = board.fault_plots[newest]
    return {"plot": plot, "matrices": count, "shown": SHOWN, "hint": HINT}


def score_plot(matrices: Sequence[Matrix]) -> str:
    """Per suite, the share of its applicable faults it caught in each matrix, over the matrices' start
    times; a suite with no applicable fault in a matrix has no point there."""
    points: dict[str, list[tuple[datetime, float]]] = {}
    for matrix in matrices:
        when = parse_time(matrix.started)
        if when == NEVER:  # no time to put it at
            continue
        for suite, (caught, applicable) in matrix.scores().items():
            points.setdefault(suite, []).append((when, 100.0 * caught / applicable))
    series = [Series(suite, points[suite]) for suite in sorted(points)]
    # 0 to 100 and a little more: a point on 0 or 100 shows whole, inside the frame.
    return plot_svg("fault score per suite", "% of applicable faults caught", series, ylim=SCORE_AXIS)
