"""The dashboard's pages, one small function each: every one a GET that reads the store, the rig files,
leases and artifacts, and finds them on `request.app.state.dashboard`.

Nothing here powers, flashes or finalizes anything: the web is for looking. A run's files are served
only from its own artifacts inside the configured artifact roots, always as plain text (hil.web.files).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hil.errors import HilError
from hil.runs import trends
from hil.runs.model import Run
from hil.runs.store import RunStore
from hil.web import faults, files
from hil.web.pages import Dashboard, dashboard, page

_HERE = Path(__file__).resolve().parent
PAGE = 50


def table() -> list[BaseRoute]:
    """Every route of the dashboard: its path and the function that answers it."""
    return [
        Route("/", overview),
        Route("/rigs", rigs),
        Route("/checks/{check_id}/console", check_console),
        Route("/releases", release_list),
        Route("/releases/{release_id}", release),
        Route("/runs", run_list),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/tests/{index}/console", test_console),
        Route("/runs/{run_id}/transcript/{index}", transcript),
        Route("/runs/{run_id}/file", run_file),
        Route("/runs/{run_id}/allure", allure),
        Route("/trends", trend_list),
        Route("/trends/{device_type}", trend),
        Route("/flaky", flaky),
        Route("/history", history),
        Route("/live", live_list),
        Route("/live/{run_id}", live),
        Route("/live/{run_id}/tail", live_tail),
        *faults.table(),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]


async def overview(request: Request) -> Response:
    """Rigs, running sessions, the latest runs, flaky tests, releases and their decisions."""
    board = dashboard(request)
    runs, releases = board.runs, board.releases
    return page(request, "overview.html", rigs=board.rig_rows(), running=_alive(runs),
                latest=runs.runs(limit=10), flaky=runs.flaky(limit=10), releases=releases.releases()[:10],
                decisions=releases.latest_decisions())  # fmt: skip


async def rigs(request: Request) -> Response:
    """Every rig, its leases (with their heartbeats) and newest check, and the session running on it."""
    board = dashboard(request)
    live = {r.rig: r for r in _alive(board.runs)}
    return page(request, "rigs.html", rigs=board.rig_rows(), live=live, stale_after=board.stale_after)


async def check_console(request: Request) -> Response:
    """What the console printed during one `hil rig check`, as the store keeps it, as plain text."""
    found = dashboard(request).lab_store.console(_int(request.path_params["check_id"], -1))
    if found is None or not found[0].has_console:
        raise HTTPException(404, "this check kept no console")
    check, console = found
    when = check.checked_at.isoformat(timespec="seconds")
    text = f"# hil rig check of {check.rig} on {check.host}, {when}\n{files.clean(console)}"
    return PlainTextResponse(text, headers={"X-Content-Type-Options": "nosniff"})


async def release_list(request: Request) -> Response:
    """Every release and its latest decision."""
    releases = dashboard(request).releases
    return page(request, "releases.html", releases=releases.releases(), decisions=releases.latest_decisions())


async def release(request: Request) -> Response:
    """One release: its decisions, the latest as a device type x suite matrix, and the evidence."""
    board = dashboard(request)
    try:
        found = board.releases.get(request.path_params["release_id"])
        decisions = board.releases.evidence(found.id)
    except HilError as exc:
        raise HTTPException(404, str(exc)) from None
    latest = decisions[-1] if decisions else None
    matrix, suites, evidence = _matrix(latest)
    run_ids = {a["run_id"] for a in (latest or {}).get("attempts", [])}
    return page(request, "release.html", release=found, decisions=decisions[::-1], latest=latest,
                matrix=matrix, suites=suites, evidence=evidence,
                recorded=board.runs.known(run_ids))  # fmt: skip


async def run_list(request: Request) -> Response:
    """The recorded runs, newest first, a page at a time, filtered by device type and rig."""
    runs = dashboard(request).runs
    device_type = request.query_params.get("device_type") or None
    rig = request.query_params.get("rig") or None
    number = max(1, _int(request.query_params.get("page"), 1))
    total = runs.count(device_type, rig)
    shown = runs.runs(limit=PAGE, offset=(number - 1) * PAGE, device_type=device_type, rig=rig)
    return page(request, "runs.html", runs=shown, page=number, pages=max(1, math.ceil(total / PAGE)),
                total=total, device_type=device_type or "", rig=rig or "")  # fmt: skip


async def run_page(request: Request) -> Response:
    """One run: its facts, tests and reasons, with links to its files."""
    run, roots = _run_or_404(request), dashboard(request).roots
    has_allure = files.allowed(run, Path(run.facts.allure), roots) and Path(run.facts.allure).is_dir()
    report = Path(run.facts.artifacts) / "gate" / "summary.html"
    gate_report = files.allowed(run, report, roots) and report.is_file()
    return page(request, "run.html", run=run, has_allure=has_allure, gate_report=gate_report,
                files_served=bool(roots), no_roots=files.NO_ROOTS)  # fmt: skip


async def test_console(request: Request) -> Response:
    """The part of the console transcript one test saw, as plain text."""
    run = _run_or_404(request)
    index = _int(request.path_params["index"], -1)
    slice_ = run.tests[index].console_slice() if 0 <= index < len(run.tests) else None
    if slice_ is None:
        raise HTTPException(404, "this test has no console slice")
    _may_serve(request, run, Path(slice_[0]))
    return PlainTextResponse(files.read_text(Path(slice_[0]), slice_[1], slice_[2]))


async def transcript(request: Request) -> Response:
    """One board's whole console transcript of a run, as plain text."""
    run = _run_or_404(request)
    index = _int(request.path_params["index"], -1)
    if not 0 <= index < len(run.facts.transcripts):
        raise HTTPException(404, "no such transcript")
    _may_serve(request, run, Path(run.facts.transcripts[index]))
    return PlainTextResponse(files.read_text(Path(run.facts.transcripts[index])))


async def run_file(request: Request) -> Response:
    """One of the run's own files, as plain text; any other path is not found."""
    run = _run_or_404(request)
    target = Path(request.query_params.get("path", ""))
    _may_serve(request, run, target)
    if not target.is_file():
        raise HTTPException(404, "not a file of this run")
    # Always plain text: an artifact must never run as a page of the dashboard.
    return PlainTextResponse(files.read_text(target), headers={"X-Content-Type-Options": "nosniff"})


async def allure(request: Request) -> Response:
    """The Allure results a run kept, listed."""
    run = _run_or_404(request)
    folder = Path(run.facts.allure)
    if not run.facts.allure:
        raise HTTPException(404, "this run kept no Allure results")
    _may_serve(request, run, folder)
    if not folder.is_dir():
        raise HTTPException(404, "this run kept no Allure results")
    roots = dashboard(request).roots
    entries = sorted(p for p in folder.iterdir() if p.is_file() and files.allowed(run, p, roots))
    return page(request, "allure.html", run=run, entries=entries)


async def trend_list(request: Request) -> Response:
    """The trend plots of every device type with runs, and each suite's fault score over time."""
    board = dashboard(request)
    device_types = board.runs.device_types()
    sections = [_trend(board, dt) for dt in device_types]
    return page(request, "trends.html", device_types=device_types, sections=sections,
                faults=faults.score_section(board))  # fmt: skip


async def trend(request: Request) -> Response:
    """The trend plots of one device type."""
    board = dashboard(request)
    device_type = request.path_params["device_type"]
    if device_type not in board.runs.device_types():
        raise HTTPException(404, f"no runs recorded for device type {device_type}")
    return page(request, "trends.html", device_types=[device_type], sections=[_trend(board, device_type)])


async def flaky(request: Request) -> Response:
    """Tests that both passed and failed on one image."""
    return page(request, "flaky.html", flaky=dashboard(request).runs.flaky())


async def history(request: Request) -> Response:
    """One test's outcomes over the runs, optionally on one device type."""
    q = request.query_params
    rows = dashboard(request).runs.history(q.get("suite", ""), q.get("test", ""), q.get("device_type", ""))
    return page(request, "history.html", rows=rows, suite=q.get("suite", ""), test=q.get("test", ""),
                device_type=q.get("device_type", ""))  # fmt: skip


async def live_list(request: Request) -> Response:
    """The sessions running now."""
    return page(request, "live_list.html", running=_alive(dashboard(request).runs))


async def live(request: Request) -> Response:
    """A running session's live console page, one tab per board."""
    board = dashboard(request)
    session = _session(board.runs, request.path_params["run_id"])
    boards = [t.parent.name for t in _transcripts(board, session)]
    return page(request, "live.html", session=session, boards=boards, files_served=bool(board.roots),
                no_roots=files.NO_ROOTS)  # fmt: skip


async def live_tail(request: Request) -> Response:
    """What a board's transcript gained since `offset`, for the live console's poll."""
    board = dashboard(request)
    session = _session(board.runs, request.path_params["run_id"])
    boards = _transcripts(board, session)
    index = _int(request.query_params.get("board"), 0)
    if not 0 <= index < len(boards):
        return JSONResponse({"offset": 0, "text": "", "running": session.alive, "waiting": True})
    offset, text = files.tail(boards[index], max(0, _int(request.query_params.get("offset"), 0)))
    return JSONResponse({"offset": offset, "text": text, "running": session.alive, "waiting": False})


async def favicon(request: Request) -> Response:
    """The icon browsers ask for at the root."""
    return RedirectResponse("/static/favicon.svg")


async def not_found(request: Request, exc: Exception) -> Response:
    """Any 404 (or 403: a file the dashboard does not serve), as the dashboard's error page."""
    board = dashboard(request)
    detail = getattr(exc, "detail", "not found")
    status = getattr(exc, "status_code", 404)
    return board.templates.TemplateResponse(
        request, "error.html", {"store": board.shown, "message": detail, "status": status}, status_code=status
    )


def _run_or_404(request: Request) -> Run:
    try:
        return dashboard(request).runs.get(request.path_params["run_id"])
    except HilError as exc:
        raise HTTPException(404, str(exc)) from None


def _may_serve(request: Request, run: Run, path: Path) -> None:
    """Refuse (403 when no artifact root is configured, else 404) a path that is not the run's to show."""
    roots = dashboard(request).roots
    if not roots:
        raise HTTPException(403, files.NO_ROOTS)
    if not files.allowed(run, path, roots):
        raise HTTPException(404, "not a file of this run")


def _transcripts(board: Dashboard, session: Any) -> list[Path]:
    """The transcripts a running session's boards write that lie inside the artifact roots."""
    return [t for t in session.transcripts() if files.inside(board.roots, t)]


def _alive(runs: RunStore) -> list:
    return [r for r in runs.running() if r.alive]


def _session(runs: RunStore, run_id: str) -> Any:
    found = next((r for r in runs.running() if r.run_id == run_id), None)
    if found is None:
        raise HTTPException(404, f"run {run_id} is not running (it may have finished: see /runs/{run_id})")
    return found


def _trend(board: Dashboard, device_type: str) -> dict[str, Any]:
    """The plots of one device type, drawn once per state of its runs: runs are only ever added, so the
    newest run's number is that state (a new run draws them anew), and the count is kept with them rather
    than read on every request (it reads every index entry of the device type)."""
    runs, cache = board.runs, board.plots
    newest = runs.runs(limit=trends.SHOWN, device_type=device_type)
    key = (device_type, newest[0].id if newest else 0)
    if key not in cache:
        ordered = newest[::-1]
        cache[key] = {
            "boot": trends.boot_plot(device_type, ordered),
            "suites": trends.suite_plot(device_type, ordered),
            "pass": trends.pass_plot(device_type, ordered),
            "count": runs.count(device_type),
        }
    plots = cache[key]
    return {"device_type": device_type, "plots": plots, "versions": trends.versions(newest),
            "runs": plots["count"]}  # fmt: skip


def _matrix(
    decision: dict | None,
) -> tuple[dict[str, dict[str, dict]], list[str], dict[tuple[str, str], list[dict]]]:
    """The decision's cells as device type -> suite -> cell, the suites in order, and each cell's attempts."""
    if decision is None:
        return {}, [], {}
    matrix: dict[str, dict[str, dict]] = defaultdict(dict)
    suites: list[str] = []
    for cell in decision["decision"]["cells"]:
        matrix[cell["device_type"]][cell["suite"]] = cell
        if cell["suite"] not in suites:
            suites.append(cell["suite"])
    evidence: dict[tuple[str, str], list[dict]] = defaultdict(list)
    devices = {s["run_id"]: s["device_type"] for s in decision.get("sessions", [])}
    for attempt in decision.get("attempts", []):
        evidence[(devices.get(attempt["run_id"], ""), attempt["suite"])].append(attempt)
    return dict(matrix), suites, dict(evidence)


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or "")
    except ValueError:
        return default
