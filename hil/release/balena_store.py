"""Releases on balenaCloud or openBalena: a thin client of the REST calls balena-sdk's release model makes.

Why not balena-sdk itself: it fixes its endpoints to https://api.<balena_host>/ when constructed, so it cannot
be pointed at openBalena on another scheme/port or at a loopback stand-in for tests. The gate needs three
calls; this client makes them request-for-request as balena-sdk 17 does (pine URL, $select, JSON body).
"""

from __future__ import annotations

import os
from typing import Any

import requests

from hil import __version__
from hil.errors import GateRefused, HilError
from hil.release.store import ALREADY_FINAL, DRAFT, FINAL, FINALIZED, INVALIDATED, Release

DEFAULT_API = "https://api.balena-cloud.com"
# What the gate reads when it looks a release up.
_LOOKUP_FIELDS = "id,commit,raw_version,is_final,is_invalidated"


class BalenaStore:
    """balena's release model over HTTP; the token comes from BALENA_API_KEY and is never echoed."""

    def __init__(
        self,
        api_url: str | None = None,
        *,
        token: str | None = None,
        api_version: str = "v7",
        timeout: float = 30,
    ) -> None:
        token = token or os.environ.get("BALENA_API_KEY")
        if not token:
            raise HilError("BALENA_API_KEY is not set: the balena release store needs an API key")
        self._token = token
        self._prefix = (
            f"{(api_url or os.environ.get('BALENA_API_URL') or DEFAULT_API).rstrip('/')}/{api_version}/"
        )
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers.update(
            {"Authorization": f"Bearer {token}", "X-Balena-Client": f"hil/{__version__}"}
        )

    def _request(self, method: str, resource: str, body: dict | None = None) -> Any:
        url = self._prefix + resource
        try:
            response = self._session.request(method, url, json=body, timeout=self._timeout)
        except requests.RequestException as exc:
            raise HilError(self._scrub(f"balena API {method} {url}: {exc}")) from None
        if not response.ok:
            detail = response.text.strip().replace("\n", " ")[:300]
            raise HilError(self._scrub(f"balena API {method} {url}: HTTP {response.status_code} {detail}"))
        try:
            return response.json()
        except ValueError:
            return response.text

    def _scrub(self, message: str) -> str:
        """An API or proxy may echo the request; the token must never reach a log or a report."""
        return message.replace(self._token, "***")

    def _get_release(self, release_id: str, select: str) -> dict:
        """pine's `get({resource: 'release', id, options: {$select}})`: one object, or not found."""
        if not release_id.isdigit():
            raise HilError(f"balena release id '{release_id}' is not a number")
        data = self._request("GET", f"release({release_id})?$select={select}")
        rows = data.get("d") if isinstance(data, dict) else None
        if rows is None:
            raise HilError(f"balena API returned no 'd' for release {release_id}")
        if not rows:
            raise HilError(f"balena release {release_id} not found (or the API key cannot see it)")
        return rows[0]

    def get(self, release_id: str) -> Release:
        """The release: its raw_version is the version results must be for."""
        row = self._get_release(release_id, _LOOKUP_FIELDS)
        status = INVALIDATED if row.get("is_invalidated") else FINAL if row.get("is_final") else DRAFT
        return Release(
            id=str(row["id"]), version=str(row.get("raw_version") or ""), device_types=(), status=status
        )

    def finalize(self, release_id: str, evidence: dict) -> str:
        """Check the release is a draft, then what `balena.models.release.finalize(id)` sends."""
        release = self.get(release_id)
        if release.status == FINAL:
            return ALREADY_FINAL
        if release.status == INVALIDATED:
            raise GateRefused(f"balena release {release_id} is invalidated; it cannot become final")
        # balena-sdk's finalize: resolve the id with $select=id, then PATCH is_final.
        resolved = self._get_release(release_id, "id")["id"]
        self._request("PATCH", f"release({resolved})", {"is_final": True})
        return FINALIZED

    def record(self, release_id: str, evidence: dict) -> None:
        """balena keeps no gate evidence; hil writes it beside the report instead."""
