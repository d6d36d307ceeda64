"""`hil serve`: the read-only web dashboard over a store: the embedded sqlite file or a lab's PostgreSQL."""

from __future__ import annotations

# Start-up speed: each command imports what it runs inside its function, so `hil --help` loads none of it.
import argparse
from pathlib import Path

from hil.store.help import STORE_HELP


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `hil serve`."""
    serve = subparsers.add_parser(
        "serve",
        help="the lab dashboard: rigs, releases, runs, trends, flaky tests, live consoles (read-only)",
        description="Serve a read-only dashboard of the store over HTTP: every agent's rig checks and "
        "leases, runs, releases. It listens on 127.0.0.1 unless told otherwise; for a lab network, put a "
        "reverse proxy with TLS and authentication in front of it.",
    )
    serve.add_argument("--store", metavar="PATH|URL", help=STORE_HELP)
    serve.add_argument(
        "--artifact-root", dest="artifact_roots", metavar="DIR", type=Path, action="append", default=[],
        help="a folder run files (consoles, JUnit, Allure, artifacts) may be served from; repeat for more. A "
        "run's file is shown only when its real path lies inside one of them. Default: none, so no run "
        "file is served (the pages say so); `hil run` writes into ./artifacts",
    )  # fmt: skip
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hil.web.app import create_app

    app = create_app(args.store, args.artifact_roots)
    roots = ", ".join(str(r) for r in app.state.dashboard.roots) or "none (no run files are served)"
    # store_path is the file, or the URL with its password masked: never the password.
    print(f"hil: dashboard of {app.state.store_path} on http://{args.host}:{args.port}/ (Ctrl-C stops); "
          f"artifact roots: {roots}")  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
