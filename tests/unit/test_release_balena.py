"""The balena store against a loopback server that behaves as balena's API (pinejs) does: a filtered PATCH
answers 200 with no body whether or not it changed a row, and a second release tag with the same key
answers 409 Conflict. Finalizing is exactly once however many gates run at once."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from hil.errors import HilError
from hil.release import gate_release
from hil.release.balena_store import CLAIM_TAG, BalenaStore
from hil.release.store import ALREADY_FINAL, FINALIZED
from tests.support.release_samples import IMAGE, catalog_of, write_junit

TOKEN = "s3cr3t-balena-api-key"
LOOKUP = "/v7/release(42)?$select=id,commit,raw_version,is_final,is_invalidated"
CONDITIONAL_PATCH = "/v7/release?$filter=id eq 42 and is_final eq false and is_invalidated eq false"
_TERM = re.compile(r"(\w+) eq ('(?:[^']|'')*'|\d+|true|false)")


def matches(row: dict, odata_filter: str) -> bool:
    """The `a eq 1 and b eq 'x'` filters the client sends, evaluated as pine would."""
    terms = odata_filter.split(" and ")
    for term in terms:
        name, literal = _TERM.fullmatch(term).groups()
        value = {"true": True, "false": False}.get(literal) if literal in ("true", "false") else (
            literal[1:-1].replace("''", "'") if literal.startswith("'") else int(literal))  # fmt: skip
        if row.get(name) != value:
            return False
    return True


@dataclass
class FakeBalenaApi:
    """Releases and release tags; each request is one transaction, as in pine."""

    releases: dict[int, dict] = field(default_factory=dict)
    tags: list[dict] = field(default_factory=list)
    requests: list[tuple[str, str, str | None, object]] = field(default_factory=list)
    patch_status: int = 200
    on_claim: object = None
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        path = unquote(handler.path)
        with self.lock:
            self.requests.append((handler.command, path, handler.headers.get("Authorization"), body))
            status, reply = self._answer(handler.command, path, body, handler.headers.get("Authorization"))
        data = reply.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json" if reply.startswith("{") else "text/plain")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, method: str, path: str, body: dict | None, auth: str | None) -> tuple[int, str]:
        resource, _, query = path.removeprefix("/v7/").partition("?")
        options = dict(part.split("=", 1) for part in query.split("&") if part)
        if resource.startswith("release(") and method == "GET":
            release = self.releases.get(int(resource[8:-1]))
            fields = options["$select"].split(",")
            return 200, json.dumps({"d": [{k: release[k] for k in fields}] if release else []})
        if resource == "release" and method == "PATCH":
            if self.patch_status != 200:
                # A careless proxy that echoes the request: the token must still not leak from hil.
                return self.patch_status, f"Internal error for {auth}"
            for release in self.releases.values():
                if matches(release, options["$filter"]):
                    release.update(body)
            return 200, ""  # pinejs respondPut: 200, no body, however many rows changed
        if resource == "release_tag" and method == "POST":
            if any((t["release"], t["tag_key"]) == (body["release"], body["tag_key"]) for t in self.tags):
                return 409, '"release" and "tag key" must be unique.'
            self.tags.append({"id": len(self.tags) + 1, **body})
            if callable(self.on_claim):
                self.on_claim(self)
            return 201, json.dumps(self.tags[-1])
        if resource == "release_tag" and method == "GET":
            rows = [t for t in self.tags if matches(t, options["$filter"])]
            return 200, json.dumps({"d": [{"value": t["value"]} for t in rows]})
        if resource == "release_tag" and method == "DELETE":
            self.tags = [t for t in self.tags if not matches(t, options["$filter"])]
            return 200, ""
        return 405, "not modelled"


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

        do_PATCH = do_POST = do_DELETE = do_GET

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


@pytest.fixture(autouse=True)
def qemux86_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default policy's rules for qemux86-64 alone. A balena release names no device types, so the
    gate judges every type its policy has rules for; these tests' results are for qemux86-64 only."""
    policy = yaml.safe_load((Path(__file__).parents[2] / "gate.yaml").read_text())
    policy["device_types"] = {"qemux86-64": policy["device_types"]["qemux86-64"]}
    (tmp_path / "gate-qemux86-64.yaml").write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("HIL_TEST_POLICY", str(tmp_path / "gate-qemux86-64.yaml"))


def gate(store: BalenaStore, results: Path, release_id: str = "42", **kwargs):
    images = {"qemux86-64": IMAGE}
    kwargs.setdefault("policy", Path(os.environ["HIL_TEST_POLICY"]))
    return gate_release(store, release_id, results=[results], catalog=catalog_of(), images=images, **kwargs)


def test_finalizing_claims_the_release_then_patches_it_on_condition(
    api: FakeBalenaApi, passing: Path, tmp_path: Path
) -> None:
    result = gate(BalenaStore(api.url), passing, report_dir=tmp_path / "report")
    assert (result.outcome, result.exit_code) == (FINALIZED, 0)
    sent = [(method, path) for method, path, _, _ in api.requests]
    assert sent == [
        ("GET", LOOKUP),  # the gate looks the release up: its version
        ("GET", LOOKUP),  # still a draft, just before claiming it
        ("POST", "/v7/release_tag"),  # the claim: 201 for one gate only
        ("PATCH", CONDITIONAL_PATCH),  # final, on condition it still is a draft
        ("GET", LOOKUP),  # and it is final now
    ]
    claim = api.requests[2][3]
    assert (claim["release"], claim["tag_key"]) == (42, CLAIM_TAG)
    assert "@" in claim["value"]
    assert api.requests[3][3] == {"is_final": True}
    assert {auth for _, _, auth, _ in api.requests} == {f"Bearer {TOKEN}"}
    assert api.releases[42]["is_final"] is True


def test_four_gates_at_once_finalize_exactly_once(api: FakeBalenaApi, passing: Path) -> None:
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def one_gate() -> None:
        store = BalenaStore(api.url, claim_wait=60)
        barrier.wait(timeout=30)
        outcomes.append(gate(store, passing).outcome)

    threads = [threading.Thread(target=one_gate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == [ALREADY_FINAL, ALREADY_FINAL, ALREADY_FINAL, FINALIZED]
    assert [m for m, *_ in api.requests].count("PATCH") == 1
    assert [t["tag_key"] for t in api.tags] == [CLAIM_TAG]


def test_the_fake_answers_a_filtered_patch_that_matches_nothing_as_pine_does(api: FakeBalenaApi) -> None:
    api.releases[42]["is_final"] = True
    store = BalenaStore(api.url)
    assert (
        store._request("PATCH", "release?$filter=id%20eq%2042%20and%20is_final%20eq%20false", {"note": "x"})
        == ""
    )
    assert "note" not in api.releases[42]


def test_a_release_invalidated_after_the_claim_is_not_reported_final(
    api: FakeBalenaApi, passing: Path
) -> None:
    def invalidate(fake: FakeBalenaApi) -> None:
        fake.releases[42]["is_invalidated"] = True

    api.on_claim = invalidate
    result = gate(BalenaStore(api.url), passing)
    assert result.exit_code == 1
    assert result.outcome == "not finalized: balena release 42 did not become final: it is invalidated"
    assert api.releases[42]["is_final"] is False
    assert api.tags == []  # the claim was given back


def test_a_claim_left_by_a_dead_gate_is_reported_naming_the_tag(api: FakeBalenaApi, passing: Path) -> None:
    api.tags.append(
        {"id": 1, "release": 42, "tag_key": CLAIM_TAG, "value": "ci@agent-3 at 2026-11-22T06:00:00"}
    )
    result = gate(BalenaStore(api.url, claim_wait=0.5), passing)
    assert result.exit_code == 1
    assert result.outcome == (
        "not finalized: balena release 42 is claimed by another gate (ci@agent-3 at 2026-11-22T06:00:00) "
        f"but is not final; if no gate is running, delete its release tag {CLAIM_TAG}"
    )
    assert "PATCH" not in [m for m, *_ in api.requests]


def test_an_api_error_leaves_the_release_draft_gives_the_claim_back_and_hides_the_token(
    api: FakeBalenaApi, passing: Path, tmp_path: Path
) -> None:
    api.patch_status = 500
    result = gate(BalenaStore(api.url), passing, report_dir=tmp_path / "report")
    assert result.exit_code == 1
    assert result.outcome.startswith("not finalized: balena API PATCH ")
    assert "HTTP 500 Internal error for Bearer ***" in result.outcome
    assert api.releases[42]["is_final"] is False
    assert api.tags == []
    written = "".join(p.read_text() for p in (tmp_path / "report").iterdir())
    assert "HTTP 500" in written
    for text in (result.text, json.dumps(result.evidence), written):
        assert TOKEN not in text


def test_a_final_release_is_not_claimed_or_patched_again(api: FakeBalenaApi, passing: Path) -> None:
    api.releases[42]["is_final"] = True
    result = gate(BalenaStore(api.url), passing)
    assert result.outcome == ALREADY_FINAL
    assert [m for m, *_ in api.requests] == ["GET", "GET"]


def test_refused_evidence_makes_no_change(api: FakeBalenaApi, passing: Path) -> None:
    write_junit(passing / "junit.xml", version="1.1.9")
    result = gate(BalenaStore(api.url), passing)
    assert result.exit_code == 1
    assert [m for m, *_ in api.requests] == ["GET"]
    assert api.releases[42]["is_final"] is False


def test_a_balena_release_needs_the_image_named_at_the_gate(api: FakeBalenaApi, passing: Path) -> None:
    result = gate_release(BalenaStore(api.url), "42", results=[passing], catalog=catalog_of())
    assert result.exit_code == 1
    assert any(r.startswith("release 42 names no image for qemux86-64") for r in result.decision.reasons)


def test_a_release_the_api_does_not_know_is_an_error(api: FakeBalenaApi, passing: Path) -> None:
    with pytest.raises(HilError, match="balena release 7 not found"):
        gate(BalenaStore(api.url), passing, release_id="7")


def test_a_release_id_that_is_no_number_never_reaches_the_api(api: FakeBalenaApi) -> None:
    with pytest.raises(HilError, match="is not a release number"):
        BalenaStore(api.url).get("9" * 5000)
    assert api.requests == []


def test_an_unreachable_api_is_an_error(passing: Path) -> None:
    with pytest.raises(HilError, match=r"balena API GET http://127\.0\.0\.1:9/v7/release\(42\)"):
        BalenaStore("http://127.0.0.1:9", timeout=5).get("42")


def test_no_api_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BALENA_API_KEY")
    with pytest.raises(HilError, match="BALENA_API_KEY is not set"):
        BalenaStore("http://127.0.0.1:9")
