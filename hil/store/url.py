"""Where the store is: a sqlite file (a path, or `sqlite:///path`) or a lab's PostgreSQL
(`postgresql://...`), chosen by `--store`, else `$HIL_STORE`, else `$HIL_RELEASE_STORE` (the old name),
else releases.sqlite in hil's cache directory.

A URL may carry a password; it is shown masked (`***`) wherever hil prints where the store is. A lab can
also keep the password out of the URL: libpq reads `$PGPASSWORD`, `$PGPASSFILE` and `~/.pgpass` itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from hil.errors import HilError
from hil.util.paths import cache_dir

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SECRET_KEYS = ("password", "sslpassword")
MASK = "***"


@dataclass(frozen=True)
class StoreUrl:
    """A store's address: the URL SQLAlchemy connects to, the sqlite file (None on PostgreSQL), and how
    to show it (the password masked)."""

    url: URL = field(repr=False)  # holds the password
    path: Path | None
    shown: str

    @property
    def is_sqlite(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        return self.shown


def store_text(store: str | Path | None = None) -> str:
    """The store as given: `store`, else $HIL_STORE, else $HIL_RELEASE_STORE, else the cache's file."""
    if store:
        return str(store)
    return os.environ.get("HIL_STORE") or os.environ.get("HIL_RELEASE_STORE") or str(default_sqlite_path())


def default_sqlite_path() -> Path:
    """releases.sqlite in hil's cache directory, the embedded store's default."""
    return cache_dir() / "releases.sqlite"


def store_url(store: str | Path | None = None) -> StoreUrl:
    """Parse the store (see store_text); a scheme hil does not store in is a one-line error."""
    text = store_text(store)
    if isinstance(store, Path) or not _SCHEME.match(text):
        path = Path(text)
        return StoreUrl(URL.create("sqlite", database=str(path)), path, str(path))
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        shown = mask_text(text)
        raise HilError(f"store {shown} is not a store URL: give a sqlite path or postgresql://...") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise HilError(f"store {mask_text(text)} names no sqlite file: use sqlite:///PATH")
        path = Path(url.database)
        return StoreUrl(url.set(drivername="sqlite"), path, str(path))
    if backend == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
        return StoreUrl(url, None, mask(url))
    raise HilError(f"store {mask(url)}: hil stores in sqlite or postgresql, not {backend}")


def mask(url: URL) -> str:
    """The URL as text, readable (not percent-encoded), with its password (in the user part or the
    query) shown as ***."""
    query = {k: v for k, v in url.query.items() if k.lower() not in _SECRET_KEYS}
    secrets = "".join(f"&{k}={MASK}" for k in url.query if k.lower() in _SECRET_KEYS)
    bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, query)
    shown = bare.render_as_string(hide_password=False)  # percent-encoded: its first "@" ends the user
    if url.password is not None and url.username:
        shown = shown.replace("@", f":{MASK}@", 1)
    shown = unquote(shown)
    if secrets:
        shown += secrets if query else "?" + secrets[1:]
    return shown.replace("postgresql+psycopg://", "postgresql://", 1)


def mask_text(text: str) -> str:
    """A store URL that did not parse, shown without anything that may be a password."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", rf"\1{MASK}@", re.sub(r"(password=)[^&]*", rf"\1{MASK}", text))
