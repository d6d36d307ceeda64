"""A gate decision for people: a terminal table, Markdown and HTML, with links to failing tests' artifacts."""

from __future__ import annotations

import html
import os
from pathlib import Path

from hil.release.cells import Cell
from hil.release.gate import Decision

_COLUMNS = ("device type", "suite", "state", "passed", "failed", "skipped", "min")


def _row(cell: Cell) -> tuple[str, ...]:
    return (
        cell.device_type,
        cell.suite,
        cell.state,
        str(cell.passed),
        str(cell.failed),
        str(cell.skipped),
        str(cell.min_tests),
    )


def _headline(decision: Decision, outcome: str) -> str:
    verdict = "FINAL" if decision.passed else "REFUSED"
    return f"release {decision.release_id} (version {decision.version or '?'}): {verdict}; store: {outcome}"


def terminal(decision: Decision, outcome: str) -> str:
    """The table and the reasons, aligned for a terminal."""
    rows = [_COLUMNS, *(_row(c) for c in decision.cells)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"  - {reason}" for reason in decision.reasons]
    lines += [f"  note: {note}" for note in decision.notes]
    lines.append(_headline(decision, outcome))
    return "\n".join(lines)


def _link(artifact: str, report_dir: Path) -> str:
    """Artifacts are linked relative to the report, so Jenkins' HTML publisher archive keeps them working."""
    return os.path.relpath(artifact, report_dir)


def markdown(decision: Decision, outcome: str, report_dir: Path) -> str:
    """The decision as Markdown: headline, table, reasons, failing tests with their artifacts."""
    out = [f"# Gate: {_headline(decision, outcome)}", ""]
    out.append("| " + " | ".join(_COLUMNS) + " |")
    out.append("|" + "---|" * len(_COLUMNS))
    out += ["| " + " | ".join(_row(c)) + " |" for c in decision.cells]
    if decision.reasons:
        out += ["", "## Why not final", ""] + [f"- {_md_escape(r)}" for r in decision.reasons]
    failing = [(c, f) for c in decision.cells for f in c.failing]
    if failing:
        out += ["", "## Failing tests", ""]
        for cell, test in failing:
            links = ", ".join(f"[{Path(a).name}]({_link(a, report_dir)})" for a in test.artifacts)
            out.append(
                f"- `{cell.device_type}/{cell.suite}` `{test.test}` {test.outcome}"
                + (f": {_md_escape(test.message.splitlines()[0])}" if test.message else "")
                + (f" ({links})" if links else "")
            )
    if decision.notes:
        out += ["", "## Notes", ""] + [f"- {_md_escape(n)}" for n in decision.notes]
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_html(decision: Decision, outcome: str, report_dir: Path) -> str:
    """The decision as a standalone HTML page for Jenkins' HTML publisher."""
    e = html.escape
    # Presentational attributes, not CSS: Jenkins' default Content-Security-Policy drops inline styles.
    colour = {"passed": "#c8f7c5", "failed": "#f7c5c5", "missing": "#f7e3c5", "too few": "#f7e3c5",
              "incomplete": "#f7e3c5", "not applicable": "#dddddd"}  # fmt: skip
    head = "".join(f"<th>{e(c)}</th>" for c in _COLUMNS)
    body = "".join(
        f'<tr bgcolor="{colour.get(c.state, "#eeeeee")}">'
        + "".join(f"<td>{e(v)}</td>" for v in _row(c))
        + "</tr>"
        for c in decision.cells
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>hil gate</title></head><body>",
        f"<h1>{e(_headline(decision, outcome))}</h1>",
        f'<table border="1" cellpadding="4" cellspacing="0"><tr>{head}</tr>{body}</table>',
    ]
    if decision.reasons:
        parts.append(
            "<h2>Why not final</h2><ul>" + "".join(f"<li>{e(r)}</li>" for r in decision.reasons) + "</ul>"
        )
    failing = [(c, f) for c in decision.cells for f in c.failing]
    if failing:
        items = []
        for cell, test in failing:
            links = ", ".join(
                f'<a href="{e(_link(a, report_dir))}">{e(Path(a).name)}</a>' for a in test.artifacts
            )
            items.append(
                f"<li><code>{e(cell.device_type)}/{e(cell.suite)}</code> <code>{e(test.test)}</code> "
                f"{e(test.outcome)}: {e(test.message)} {links}</li>"
            )
        parts.append("<h2>Failing tests</h2><ul>" + "".join(items) + "</ul>")
    if decision.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in decision.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
