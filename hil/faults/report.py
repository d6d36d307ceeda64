"""A fault run's files, for people and for CI: the matrix as text, as JSON, and a summary.html page."""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from pathlib import Path

from hil.faults.matrix import Matrix, render

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
    "padding:4px 8px;text-align:left;vertical-align:top}.caught{background:#dfd}.missed,.not-injected"
    "{background:#fdd}.not-applicable{color:#777}"
)


def summary_html(matrix: Matrix) -> str:
    """The matrix as a self-contained page: what ran, the verdict, one row a fault, the suites' scores."""
    e = html.escape
    verdict = (
        "every applicable fault was caught" if matrix.passed else "not every applicable fault was caught"
    )
    rows = "".join(
        f"<tr class='{c.outcome.replace(' ', '-')}'><td>{e(c.fault)}</td><td>{e(c.suite)}</td>"
        f"<td>{e(c.outcome)}</td><td>{e(c.test)}</td><td>{e(c.line)}</td><td>{c.seconds:.0f}</td></tr>"
        for c in matrix.cells
    )
    scores = "".join(
        f"<tr><td>{e(s)}</td><td>{caught} of {total}</td></tr>"
        for s, (caught, total) in sorted(matrix.scores().items())
    )
    return (
        f"<!doctype html><meta charset='utf-8'><title>hil faults: {e(matrix.os_profile)}</title>"
        f"<style>{_STYLE}</style><h1>Faults: {matrix.caught} of {len(matrix.applicable)} caught</h1>"
        f"<p>{e(verdict)}. Image {e(matrix.image)} (sha256 {e(matrix.image_sha256[:16])}), OS profile "
        f"{e(matrix.os_profile)}, rig {e(matrix.rig)}; control: {e(matrix.control)}; "
        f"{e(matrix.started)} to {e(matrix.finished)}.</p>"
        "<table><tr><th>fault</th><th>suite</th><th>outcome</th><th>test that must catch it</th>"
        f"<th>first line of its failure, or why not</th><th>s</th></tr>{rows}</table>"
        f"<h2>Score per suite</h2><table><tr><th>suite</th><th>caught</th></tr>{scores}</table>"
    )


def write_report(matrix: Matrix, directory: Path) -> list[Path]:
    """faults.txt, faults.json and summary.html in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    files = [directory / "faults.txt", directory / "faults.json", directory / "summary.html"]
    files[0].write_text(render(matrix) + "\n")
    files[1].write_text(json.dumps({**asdict(matrix), "passed": matrix.passed}, indent=2) + "\n")
    files[2].write_text(summary_html(matrix))
    return files
