"""The dashboard (`hil serve`): one Starlette app over one store, assembled from the pages in
hil.web.routes (and the fault matrices' pages, hil.web.faults).

Nothing here powers, flashes or finalizes anything: the web is for looking. Pages are rendered on the
server (Jinja2), plots are inline SVG (hil.util.plots), and the only script is the live console's poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.templating import Jinja2Templates

from hil.errors import HilError
from hil.faults.record import FaultStore
from hil.lab.lab_store import LabStore
from hil.lab.locking import STALE_AFTER
from hil.release.sqlite_store import SqliteStore
from hil.runs.store import RunStore
from hil.store.url import store_url
from hil.web import files, pages, routes

_HERE = Path(__file__).resolve().parent
# Passed to templates: a cell's state -> its colour class.
STATES = ("passed", "failed", "missing", "too few", "incomplete", "not applicable")


def create_app(
    store: str | Path | None = None, artifact_roots: Sequence[Path] = (), stale_after: float = STALE_AFTER
) -> Starlette:
    """The dashboard of the store at `store` (a sqlite path or a store URL; default: the one hil records
    into), serving run files only from inside `artifact_roots` (none: no run files); refuses a missing store.
    A mirrored lease not refreshed for `stale_after` seconds is shown as stale."""
    where = store_url(store)
    path = where.path or where.shown  # what the pages show: the file, or the URL with its password masked
    if where.path is not None and not where.path.is_file():
        raise HilError(f"no store at {path}: nothing recorded yet (`hil run` records there), or pass --store")
    runs, releases, lab, faults = RunStore(where), SqliteStore(where), LabStore(where), FaultStore(where)
    templates = Jinja2Templates(directory=_HERE / "templates")
    templates.env.filters["secs"] = _secs
    templates.env.globals["states"] = STATES
    handlers = {403: routes.not_found, 404: routes.not_found}
    app = Starlette(routes=routes.table(), exception_handlers=handlers)
    app.state.dashboard = pages.Dashboard(
        shown=path, runs=runs, releases=releases, lab_store=lab, faults=faults, templates=templates,
        roots=files.artifact_roots(artifact_roots), stale_after=stale_after,
    )  # fmt: skip
    app.state.store_path = path
    return app


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"
