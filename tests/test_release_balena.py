"""The balena store against a loopback HTTP server standing in for balena's API: exact calls, and errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from release_samples import write_junit

from hil.errors import HilError
from hil.release import gate_release
from hil.release.balena_store import BalenaStore
from hil.release.store import ALREADY_FINAL, FINALIZED

TOKEN = "s3cr3t-balena-api-key"
LOOKUP = "/v7/release(42)?$select=id,commit,raw_version,is_final,is_invalidated"


@dataclass
class FakeBalenaApi:
    """Releases by id, every request received, and an optional status to answer PATCHes with."""

    releases: dict[int, dict] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None, object]] = field(default_factory=list)
    patch_status: int = 200
    url: str = ""

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        self.requests.append((handler.command, handler.path, handler.headers.get("Authorization"), body))
        release_id = int(handler.path.split("(")[1].split(")")[0])
        release = self.releases.get(release_id)
        if handler.command == "GET":
            fields = handler.path.split("$select=")[1].split(",")
            rows = [{k: release[k] for k in fields}] if release else []
            self._reply(handler, 200, json.dumps({"d": rows}), "application/json")
        elif self.patch_status != 200:
            # A careless proxy that echoes the request: the token must still not leak from hil.
            echo = f"Internal error for {handler.headers.get('Authorization')}"
            self._reply(handler, self.patch_status, echo, "text/plain")
        else:
            release.update(body)
            self._reply(handler, 200, "OK", "text/plain")

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, text: str, content_type: str) -> None:
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def api() -> Iterator[FakeBalenaApi]:
    fake = FakeBalenaApi(
        releases={
            42: {
                "id": 42,
                "commit": "abc123",
                "raw_version": "1.2.0",
                "is_final": False,
                "is_invalidated": False,
            }
        }
    )

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.handle(self)

        def do_PATCH(self) -> None:
            fake.handle(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BALENA_API_KEY", TOKEN)


@pytest.fixture
def passing(tmp_path: Path) -> Path:
    write_junit(tmp_path / "results" / "junit.xml", version="1.2.0")
    return tmp_path / "results"


def test_finalizing_makes_the_calls_balena_sdk_makes(
    api: FakeBalenaApi, passing: Path, tmp_path: Path
) -> None:
    result = gate_release(BalenaStore(api.url), "42", results=[passing], report_dir=tmp_path / "report")
    assert (result.outcome, result.exit_code) == (FINALIZED, 0)
    assert [(method, path, body) for method, path, _, body in api.requests] == [
        ("GET", LOOKUP, None),  # the gate looks the release up: its version
        ("GET", LOOKUP, None),  # still a draft, just before finalizing
        ("GET", "/v7/release(42)?$select=id", None),  # balena-sdk release.finalize(42) ...
        ("PATCH", "/v7/release(42)", {"is_final": True}),  # ... step two
    ]
    assert {auth for _, _, auth, _ in api.requests} == {f"Bearer {TOKEN}"}
    assert api.releases[42]["is_final"] is True


def test_a_final_release_is_not_patched_again(api: FakeBalenaApi, passing: Path) -> None:
    api.releases[42]["is_final"] = True
    result = gate_release(BalenaStore(api.url), "42", results=[passing])
    assert result.outcome == ALREADY_FINAL
    assert [m for m, *_ in api.requests] == ["GET", "GET"]


def test_refused_evidence_makes_no_change(api: FakeBalenaApi, passing: Path) -> None:
    write_junit(passing / "junit.xml", version="1.1.9")
    result = gate_release(BalenaStore(api.url), "42", results=[passing])
    assert result.exit_code == 1
    assert [m for m, *_ in api.requests] == ["GET"]
    assert api.releases[42]["is_final"] is False


def test_an_api_error_leaves_the_release_draft_and_is_reported_without_the_token(
    api: FakeBalenaApi, passing: Path, tmp_path: Path
) -> None:
    api.patch_status = 500
    result = gate_release(BalenaStore(api.url), "42", results=[passing], report_dir=tmp_path / "report")
    assert result.exit_code == 1
    assert result.outcome.startswith("not finalized: balena API PATCH ")
    assert "HTTP 500 Internal error for Bearer ***" in result.outcome
    assert api.releases[42]["is_final"] is False
    written = "".join(p.read_text() for p in (tmp_path / "report").iterdir())
    assert "HTTP 500" in written
    for text in (result.text, json.dumps(result.evidence), written):
        assert TOKEN not in text


def test_a_release_the_api_does_not_know_is_an_error(api: FakeBalenaApi, passing: Path) -> None:
    with pytest.raises(HilError, match="balena release 7 not found"):
        gate_release(BalenaStore(api.url), "7", results=[passing])


def test_an_unreachable_api_is_an_error(passing: Path) -> None:
    with pytest.raises(HilError, match=r"balena API GET http://127\.0\.0\.1:9/v7/release\(42\)"):
        BalenaStore("http://127.0.0.1:9", timeout=5).get("42")


def test_no_api_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BALENA_API_KEY")
    with pytest.raises(HilError, match="BALENA_API_KEY is not set"):
        BalenaStore("http://127.0.0.1:9")
