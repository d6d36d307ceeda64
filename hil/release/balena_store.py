"""Releases on balenaCloud or openBalena: a thin client of the few REST calls the gate needs.

Why not balena-sdk itself: it fixes its endpoints to https://api.<balena_host>/ when constructed, so it cannot
be pointed at openBalena on another scheme/port or at a loopback stand-in for tests.

Finalizing exactly once. A filtered PATCH (`PATCH /v7/release?$filter=id eq 42 and is_final eq false`) is a
conditional update, but it cannot tell its caller whether it changed anything: pinejs runs PATCH, PUT and
MERGE through `runPut`, which counts the affected rows only to decide whether to validate the model, and
`respondPut` answers `{statusCode: 200}` with no body either way (balena-io/pinejs,
src/sbvr-api/sbvr-utils.ts). Four gates sending it all read "200 OK". What the API does tell apart is a
second insert of the same natural key: `release has tag key` is a fact type (open-balena-api
src/balena.sbvr), so (release, tag_key) is unique, the database's constraint error becomes 409 Conflict
(`convertToHttpError`: ConstraintError -> ConflictError), and balena-sdk relies on exactly that ("the last
POST will get a Conflict error", src/util/dependent-resource.ts). So a gate first claims the release by
creating the release tag `hil.finalized-by`: the one gate whose POST answers 201 sends the filtered PATCH
and says FINALIZED; every other waits until the release is final and says ALREADY_FINAL.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from typing import Any
from urllib.parse import quote

import requests

from hil import __version__
from hil.errors import GateRefused, HilError
from hil.release.store import ALREADY_FINAL, DRAFT, FINAL, FINALIZED, INVALIDATED, Release, release_id

DEFAULT_API = "https://api.balena-cloud.com"
# What the gate reads when it looks a release up.
_LOOKUP_FIELDS = "id,commit,raw_version,is_final,is_invalidated"
# The release tag that claims a release for one gate's finalize; it stays as the record of who did.
CLAIM_TAG = "hil.finalized-by"
_CONFLICT = 409


def _odata_string(text: str) -> str:
    """An OData string literal: single quotes, a quote inside doubled."""
    return "'" + text.replace("'", "''") + "'"


class BalenaStore:
    """balena's release model over HTTP; the token comes from BALENA_API_KEY and is never echoed."""

    def __init__(
        self,
        api_url: str | None = None,
        *,
        token: str | None = None,
        api_version: str = "v7",
        timeout: float = 30,
        claim_wait: float = 120,
    ) -> None:
        token = token or os.environ.get("BALENA_API_KEY")
        if not token:
            raise HilError("BALENA_API_KEY is not set: the balena release store needs an API key")
        self._token = token
        self._prefix = (
            f"{(api_url or os.environ.get('BALENA_API_URL') or DEFAULT_API).rstrip('/')}/{api_version}/"
        )
        self._timeout = timeout
        self._claim_wait = claim_wait
        self._session = requests.Session()
        self._session.headers.update(
            {"Authorization": f"Bearer {token}", "X-Balena-Client": f"hil/{__version__}"}
        )

    def _request(
        self, method: str, resource: str, body: dict | None = None, *, conflict: bool = False
    ) -> Any:
        """One API call; a 409 returns None when `conflict` says the caller expects it."""
        url = self._prefix + resource
        try:
            response = self._session.request(method, url, json=body, timeout=self._timeout)
        except requests.RequestException as exc:
            raise HilError(self._scrub(f"balena API {method} {url}: {exc}")) from None
        if conflict and response.status_code == _CONFLICT:
            return None
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

    def _rows(self, resource: str) -> list[dict]:
        data = self._request("GET", resource)
        rows = data.get("d") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise HilError(f"balena API returned no 'd' list for {resource.split('?', 1)[0]}")
        return rows

    def get(self, release_id_text: str) -> Release:
        """The release: its raw_version is the version results must be for."""
        number = release_id(release_id_text)
        rows = self._rows(f"release({number})?$select={_LOOKUP_FIELDS}")
        if not rows:
            raise HilError(f"balena release {number} not found (or the API key cannot see it)")
        row = rows[0]
        status = INVALIDATED if row.get("is_invalidated") else FINAL if row.get("is_final") else DRAFT
        return Release(
            id=str(row["id"]), version=str(row.get("raw_version") or ""), device_types=(), status=status
        )

    def finalize(self, release_id_text: str, evidence: dict) -> str:
        """Claim the release, then PATCH it final on the condition that it is still a draft."""
        number = release_id(release_id_text)
        claim = f"{evidence.get('who', '?')} at {evidence.get('decided_at', '?')} ({uuid.uuid4().hex[:8]})"
        deadline = time.monotonic() + self._claim_wait
        while True:
            release = self.get(str(number))
            if release.status == FINAL:
                return ALREADY_FINAL
            if release.status == INVALIDATED:
                raise GateRefused(f"balena release {number} is invalidated; it cannot become final")
            if self._claim(number, claim):
                break
            holder = self._claimed_by(number)
            if holder is not None and time.monotonic() > deadline:
                raise HilError(
                    f"balena release {number} is claimed by another gate ({holder}) but is not final; if no "
                    f"gate is running, delete its release tag {CLAIM_TAG}"
                )
            time.sleep(0.2)
        try:
            condition = f"id eq {number} and is_final eq false and is_invalidated eq false"
            self._request("PATCH", f"release?$filter={quote(condition)}", {"is_final": True})
            after = self.get(str(number))
        except HilError:
            self._unclaim(number, claim)
            raise
        if after.status != FINAL:
            self._unclaim(number, claim)
            raise GateRefused(f"balena release {number} did not become final: it is {after.status}")
        return FINALIZED

    def _claim(self, number: int, claim: str) -> bool:
        """Create the claim tag: True for the one gate that created it, False when another holds it."""
        body = {"release": number, "tag_key": CLAIM_TAG, "value": claim}
        return self._request("POST", "release_tag", body, conflict=True) is not None

    def _tag_filter(self, number: int, value: str | None = None) -> str:
        condition = f"release eq {number} and tag_key eq {_odata_string(CLAIM_TAG)}"
        if value is not None:
            condition += f" and value eq {_odata_string(value)}"
        return quote(condition)

    def _claimed_by(self, number: int) -> str | None:
        rows = self._rows(f"release_tag?$select=value&$filter={self._tag_filter(number)}")
        return str(rows[0].get("value")) if rows else None

    def _unclaim(self, number: int, claim: str) -> None:
        """Give the claim back after a failed PATCH, so a later gate can finalize; best effort."""
        with contextlib.suppress(HilError):
            self._request("DELETE", f"release_tag?$filter={self._tag_filter(number, claim)}")

    def record(self, release_id: str, evidence: dict) -> None:
        """balena keeps no gate evidence; hil writes it beside the report instead."""
