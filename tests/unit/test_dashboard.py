"""`hil serve` over HTTP on a store filled by real recorded runs: every page answers, nothing writes, and a
run's files are the only files it shows, always as text. What a person sees is in test_dashboard_browser."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from hil.errors import HilError
from hil.web.app import create_app
from tests.support.fake_runs import GatedLab


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, dict(reply.headers), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_every_page_answers(url: str, lab: GatedLab) -> None:
    test = urllib.parse.quote("test_smoke::test_time_sync_is_flaky_here")
    run = f"/runs/{lab.failing}"
    for path in ("/", "/rigs", "/releases", f"/releases/{lab.release}", "/runs", run, "/trends",
                 "/trends/qemux86-64", "/flaky", "/live", "/faults", f"{run}/allure", f"{run}/transcript/0",
                 f"{run}/tests/0/console", f"/history?device_type=qemux86-64&suite=smoke&test={test}",
                 ):  # fmt: skip
        status, _, body = fetch(url + path)
        assert status == 200, f"{path}: {status} {body[:300]}"


def test_a_tests_console_slice_is_what_the_board_printed_during_it(url: str, lab: GatedLab) -> None:
    _, _, first = fetch(f"{url}/runs/{lab.failing}/tests/0/console")
    _, _, second = fetch(f"{url}/runs/{lab.failing}/tests/1/console")
    assert "console-ok" in first and "console-ok" not in second
    assert "checking the clock" in second


def test_nothing_on_the_dashboard_writes(url: str, lab: GatedLab) -> None:
    for path in ("/", f"/releases/{lab.release}", f"/runs/{lab.failing}"):
        assert fetch(url + path, "POST")[0] == 405
    with (
        pytest.raises(HilError, match="attempt to write a readonly database"),
        lab_store(lab).transaction(read_only=True) as db,
    ):
        db.exec_driver_sql("DELETE FROM runs")


def lab_store(lab: GatedLab):  # the dashboard's own way of reading
    from hil.store.db import Database

    return Database(lab.lab.store)


def test_a_run_shows_only_its_own_files_and_only_as_text(url: str, lab: GatedLab, tmp_path: Path) -> None:
    allure = Path(json.loads(_facts(lab))["allure"])
    result = next(allure.glob("*-result.json"))
    status, headers, body = fetch(f"{url}/runs/{lab.failing}/file?path={urllib.parse.quote(str(result))}")
    assert status == 200 and headers["content-type"].startswith("text/plain") and '"status"' in body
    for outside in ("/etc/passwd", str(lab.lab.store), f"{allure}/../../../../etc/passwd", "relative.txt"):
        status, _, _ = fetch(f"{url}/runs/{lab.failing}/file?path={urllib.parse.quote(outside)}")
        assert status == 404, outside


def _facts(lab: GatedLab) -> str:
    import sqlite3

    with sqlite3.connect(lab.lab.store) as db:
        return db.execute("SELECT facts FROM runs WHERE run_id = ?", (lab.failing,)).fetchone()[0]


def test_runs_but_no_fault_matrix_the_trends_page_says_how_to_make_one(url: str) -> None:
    _, _, page = fetch(f"{url}/trends")
    assert 'id="trend-qemux86-64"' in page  # the runs' plots
    faults = page[page.index('id="faults"') :]
    assert "No fault matrix recorded yet: <code>hil faults run --rig RIG</code>" in faults
    assert "<svg" not in faults
    _, _, one = fetch(f"{url}/trends/qemux86-64")
    assert 'id="faults"' not in one  # one device type's trends: its runs only


def test_an_unknown_run_is_a_page_saying_so(url: str) -> None:
    status, _, body = fetch(f"{url}/runs/nosuchrun")
    assert status == 404 and "run nosuchrun is not recorded" in body


def test_serving_a_store_that_is_not_there_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HilError, match=r"no store at .*missing.sqlite: nothing recorded yet"):
        create_app(tmp_path / "missing.sqlite")
