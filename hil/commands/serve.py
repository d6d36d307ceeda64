"""`hil serve`: the read-only web dashboard on the embedded store."""

from __future__ import annotations

# Start-up speed: each command imports what it runs inside its function, so `hil --help` loads none of it.
import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `hil serve`."""
    serve = subparsers.add_parser(
        "serve",
        help="the lab dashboard: rigs, releases, runs, trends, flaky tests, live consoles (read-only)",
        description="Serve a read-only dashboard of the store over HTTP. It listens on 127.0.0.1 unless told "
        "otherwise; for a lab network, put a reverse proxy with TLS and authentication in front of it.",
    )
    serve.add_argument(
        "--store", type=Path, help="store file (default: $HIL_RELEASE_STORE, else <cache>/releases.sqlite)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hil.web.app import create_app

    app = create_app(args.store)
    print(f"hil: dashboard of {app.state.store_path} on http://{args.host}:{args.port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
