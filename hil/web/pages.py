"""What every page of the dashboard shares: the `Dashboard` (the stores it reads, its templates, the
folders run files may come from, the plots drawn so far) and rendering a page with it. hil.web.routes and
hil.web.faults both build on this, so neither imports the other's pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from hil.faults.record import FaultStore
from hil.lab.lab_store import LabStore
from hil.lab.locking import STALE_AFTER
from hil.release.sqlite_store import SqliteStore
from hil.runs.store import RunStore
from hil.web import lab


@dataclass
class Dashboard:
    """What every page reads: the store (as the pages name it), its runs, releases, rig checks and
    leases, fault matrices, the templates, the folders run files may come from, and the plots drawn so
    far (a device type's trend plots by the state of its runs; the fault score plot by the newest matrix)."""

    shown: Path | str
    runs: RunStore
    releases: SqliteStore
    lab_store: LabStore
    faults: FaultStore
    templates: Jinja2Templates
    roots: tuple[Path, ...] = ()  # the artifact roots: no run file is served from outside them
    stale_after: float = STALE_AFTER  # a mirrored lease not refreshed for this long is stale
    plots: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)  # (device type, newest run)
    fault_plots: dict[int, tuple[str, int]] = field(default_factory=dict)  # newest -> (plot, matrices)

    def rig_rows(self) -> list[lab.RigRow]:
        """Every rig, its newest check and its leases (hil.web.lab)."""
        return lab.rig_rows(self.lab_store, stale_after=self.stale_after)


def dashboard(request: Request) -> Dashboard:
    """The dashboard the app serving `request` was made with."""
    found: Dashboard = request.app.state.dashboard
    return found


def page(request: Request, name: str, **context: Any) -> Response:
    """The template `name` rendered with `context` and the store's name (every page shows it)."""
    board = dashboard(request)
    return board.templates.TemplateResponse(request, name, {"store": board.shown, **context})
