"""What a person sees, in a real browser (Debian's headless Chromium, tests/support/browser.py): the release
matrix, a flaky test flagged, plots drawn, the live console following a board's transcript as it grows,
and the gate's summary.html under Jenkins' Content-Security-Policy. Screenshots are kept in
artifacts/browser-tests/."""

from __future__ import annotations

import functools
import http.server
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.runs.store import RunStore
from tests.support.browser import CHROMIUM, Browser
from tests.support.fake_runs import ROOT, GatedLab

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (scripts/setup installs it)"
)

SHOTS = ROOT / "artifacts" / "browser-tests"
# What Jenkins serves archived HTML reports under, unless an admin relaxes it.
JENKINS_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'self';"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as b:
        yield b


def test_the_release_page_shows_the_matrix_cell_and_the_evidence_behind_it(
    browser: Browser, url: str, lab: GatedLab
) -> None:
    browser.open(f"{url}/releases/{lab.release}")
    cell = "document.querySelector('td.cell[data-cell=\"qemux86-64/smoke\"]')"
    assert "failed" in browser.evaluate(f"{cell}.innerText")
    assert browser.evaluate(f"getComputedStyle({cell}).backgroundColor") == "rgb(254, 215, 215)"
    assert browser.evaluate("document.querySelector('.status').innerText") == "final"
    history = browser.evaluate("[...document.querySelectorAll('table')].at(-1).innerText")
    assert "finalized" in history and "not finalized (it was already final)" in history
    evidence = browser.evaluate(
        "document.getElementById('evidence-qemux86-64-smoke').nextElementSibling.innerText"
    )
    assert "chrony did not sync within the bound" in evidence and lab.failing in evidence
    browser.screenshot(SHOTS / "release.png")


def test_a_flaky_test_is_flagged_with_its_history(browser: Browser, url: str, lab: GatedLab) -> None:
    browser.open(f"{url}/flaky")
    row = "document.querySelector('tr.flaky-test')"
    assert "test_smoke::test_time_sync_is_flaky_here" in browser.evaluate(f"{row}.innerText")
    assert browser.evaluate(f"{row}.querySelector('.flag').getBoundingClientRect().width") > 0
    browser.screenshot(SHOTS / "flaky.png")
    browser.open(browser.evaluate(f"{row}.querySelector('a').href"))
    outcomes = browser.evaluate("[...document.querySelectorAll('tr.test .outcome')].map(e => e.innerText)")
    assert outcomes == ["failed", "passed"]
    browser.screenshot(SHOTS / "flaky-history.png")


def test_the_trend_plots_are_drawn(browser: Browser, url: str) -> None:
    browser.open(f"{url}/trends")
    plots = browser.evaluate(
        "[...document.querySelectorAll('.plot svg')].map(s => s.getBoundingClientRect().width)"
    )
    assert len(plots) == 3 and min(plots) > 300
    # The pass-rate line itself, drawn with a width (not just axes).
    line = browser.evaluate(
        "[...document.querySelectorAll('.plot svg')].at(-1).querySelector('path[stroke=\"#1f77b4\"]')"
        ".getBBox().width"
    )
    assert line > 100
    browser.screenshot(SHOTS / "trends.png")


def test_a_run_page_lists_each_test_with_its_duration_reason_and_console(browser: Browser, url: str,
                                                                        lab: GatedLab) -> None:  # fmt: skip
    browser.open(f"{url}/runs/{lab.failing}")
    rows = browser.evaluate("[...document.querySelectorAll('tr.test')].map(r => r.innerText)")
    assert any("failed" in r and "chrony did not sync" in r and "console slice" in r for r in rows)
    assert any("skipped" in r and "rig lacks wifi" in r for r in rows)
    browser.screenshot(SHOTS / "run.png")


@pytest.fixture
def live_artifacts() -> Iterator[Path]:
    """A run's artifacts folder under the temp folder, one of the roots the test server serves from."""
    with tempfile.TemporaryDirectory(prefix="hil-live-") as artifacts:
        yield Path(artifacts)


def test_the_live_console_follows_a_transcript_as_it_grows(
    browser: Browser, url: str, lab: GatedLab, live_artifacts: Path
) -> None:
    artifacts = live_artifacts
    transcript = artifacts / "bench" / "console.log"
    transcript.parent.mkdir()
    transcript.write_bytes(b"\x1b[2JBdsDxe: loading Boot0001\r\n[    0.000000] Linux version 6.1.0\r\n")
    run_id = uuid.uuid4().hex[:12]
    RunStore(lab.lab.store).start(run_id, "2026-11-29T00:00:00+00:00", "bench", artifacts)
    browser.open(f"{url}/live")
    assert browser.evaluate(f"document.querySelector('a[href=\"/live/{run_id}\"]').innerText") == run_id
    browser.open(f"{url}/live/{run_id}")
    console = "document.getElementById('console').innerText"
    browser.wait_for(f"{console}.includes('Linux version 6.1.0')")
    assert "\x1b" not in browser.evaluate(console)
    with transcript.open("ab") as f:
        for line in (b"Welcome to Buildroot\r\n", b"bench login: "):
            f.write(line)
            f.flush()
            time.sleep(0.5)
        f.write(b"root\r\n# \r\n")
    browser.wait_for(f"{console}.includes('bench login: root')")
    assert browser.evaluate("document.getElementById('state').innerText") == "following"
    browser.screenshot(SHOTS / "live-console.png")


class _JenkinsLike(http.server.SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", JENKINS_CSP)
        super().end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_gate_summary_keeps_its_colours_and_plot_under_jenkins_csp(
    browser: Browser, lab: GatedLab
) -> None:
    handler = functools.partial(_JenkinsLike, directory=str(lab.reports[1]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.open(f"http://127.0.0.1:{server.server_address[1]}/summary.html")
        assert browser.evaluate("document.querySelector('svg').getBoundingClientRect().width") > 300
        # Presentation attributes survive the CSP: the plot's background is white, not the default black.
        fill = browser.evaluate("getComputedStyle(document.querySelector('svg path')).fill")
        assert fill == "rgb(255, 255, 255)"
        failed = browser.evaluate(
            "[...document.querySelectorAll('tr')].find(r => r.innerText.includes('chrony did not sync'))"
            ".getAttribute('bgcolor')"
        )
        assert failed == "#f7c5c5"
        browser.screenshot(SHOTS / "gate-summary.png")
    finally:
        server.shutdown()
