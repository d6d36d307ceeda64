"""The dashboard serves a run's files only from the artifact roots it was started with: a run that records
`/` as its artifacts, a path with `..`, and a symlink inside a root that leads out are all refused; a run's
own file inside a root is served; with no root configured, no run file is, and the pages say how to
configure one."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hil.runs.record import SessionInfo, run_from_junit
from hil.runs.store import RunStore
from tests.support.dashboard_server import serving
from tests.support.release_samples import write_junit
from tests.unit.test_dashboard import fetch


@dataclass(frozen=True)
class Files:
    """A store with two runs: `evil` says its artifacts are `/`, `good` keeps them in the root."""

    store: Path
    root: Path
    secret: Path  # a file outside the root, as /root/.ssh/id_ed25519 would be


@pytest.fixture
def files(tmp_path: Path) -> Files:
    root, outside = tmp_path / "artifacts", tmp_path / "outside"
    outside.mkdir()
    secret = outside / "id_ed25519"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    store = RunStore(tmp_path / "store.sqlite")
    for run_id, artifacts in (("evil", Path("/")), ("good", root / "good")):
        junit = write_junit(root / run_id / "junit.xml", run_id=run_id)
        info = SessionInfo(run_id, "2026-11-22T06:00:00+00:00", "bench", "qemux86-64", artifacts)
        store.record(*run_from_junit(junit, info))
    (root / "good" / "link").symlink_to(secret)
    return Files(tmp_path / "store.sqlite", root, secret)


@pytest.fixture
def url(files: Files) -> Iterator[str]:
    with serving(files.store, artifact_roots=[files.root]) as base:
        yield base


def file_of(url: str, run: str, path: Path | str) -> tuple[int, str]:
    status, _, body = fetch(f"{url}/runs/{run}/file?path={urllib.parse.quote(str(path))}")
    return status, body


def test_a_run_that_records_root_as_its_artifacts_reaches_nothing_outside_the_roots(
    url: str, files: Files
) -> None:
    for outside in (files.secret, "/etc/passwd", files.store):
        status, body = file_of(url, "evil", outside)
        assert status == 404 and "PRIVATE KEY" not in body, outside


def test_a_path_with_dotdot_or_a_symlink_out_of_the_root_is_refused(url: str, files: Files) -> None:
    good = files.root / "good"
    for path in (f"{good}/../../outside/{files.secret.name}", f"{good}/../good/junit.xml", good / "link"):
        status, body = file_of(url, "good", path)
        assert status in (403, 404) and "PRIVATE KEY" not in body, path


def test_a_runs_own_file_inside_a_root_is_served_as_text(url: str, files: Files) -> None:
    status, headers, body = fetch(
        f"{url}/runs/good/file?path={urllib.parse.quote(str(files.root / 'good' / 'junit.xml'))}"
    )
    assert status == 200 and headers["content-type"].startswith("text/plain") and "<testsuite" in body
    assert file_of(url, "good", files.root / "evil" / "junit.xml")[0] == 404  # another run's file


def test_with_no_artifact_root_no_run_file_is_served_and_the_pages_say_how(files: Files) -> None:
    with serving(files.store, artifact_roots=[]) as base:
        status, body = file_of(base, "good", files.root / "good" / "junit.xml")
        assert status == 403 and "hil serve --artifact-root DIR" in body
        status, _, page = fetch(f"{base}/runs/good")
        assert status == 200 and "this dashboard serves no run files" in page
