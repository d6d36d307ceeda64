"""A gate decision for people: a terminal table, Markdown and HTML, with links to failing tests' artifacts."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
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


def render_html(
    decision: Decision,
    outcome: str,
    report_dir: Path,
    evidence: dict | None = None,
    plots: Sequence[str] = (),
) -> str:
    """The decision as one self-contained HTML page for Jenkins' HTML publisher: the table, the reasons,
    every test of the gated device types (reason, duration, boot times, artifacts) and the trend plots
    (inline SVG: no script, no CSS, no network)."""
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
    parts += _test_rows(decision, evidence or {}, report_dir)
    if plots:
        parts.append(
            "<h2>Boot time across recorded runs</h2>" + "".join(f"<div>{svg}</div>" for svg in plots)
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


_OUTCOME_COLOUR = {"passed": "#c8f7c5", "failed": "#f7c5c5", "error": "#f7c5c5", "skipped": "#f7e3c5"}


def _test_rows(decision: Decision, evidence: dict, report_dir: Path) -> list[str]:
    """Every test the results hold for the gated device types, with its reason, duration, what it measured
    (boot times), its console slice and artifacts; and each session with its first boot time."""
    e = html.escape
    sessions = {(s["run_id"], s["source"]): s for s in evidence.get("sessions", [])}
    gated = set(decision.device_types)
    attempts = [a for a in evidence.get("attempts", [])
                if sessions.get((a["run_id"], a["source"]), {}).get("device_type") in gated]  # fmt: skip
    if not attempts:
        return []
    listed = []
    for key, s in sessions.items():
        boot = next((v for a in attempts if (a["run_id"], a["source"]) == key
                     for k, v in a.get("timings", ()) if k == "hil.boot_seconds"), None)  # fmt: skip
        shown = f"boot to console login {boot:.2f} s" if boot is not None else "no boot time recorded"
        listed.append(f"<li>{e(s['device_type'])}: run {e(s['run_id'])} on {e(', '.join(s['rigs']) or '?')}, "
                      f"OS {e(s['os_version'] or '?')}, {shown} ({e(s['source'])})</li>")  # fmt: skip
    rows = []
    for a in attempts:
        reason = a["message"] + (f" (OS lacks {a['missing_feature']})" if a["missing_feature"] else "")
        reason += f" (rig lacks {a['missing_capability']})" if a["missing_capability"] else ""
        timings = "<br>".join(f"{e(k.removeprefix('hil.'))} {v:.2f} s" for k, v in a.get("timings", ()))
        links = [f'<a href="{e(_link(x, report_dir))}">{e(Path(x).name)}</a>' for x in a["artifacts"]]
        if console := a.get("console", ""):
            file, _, span = console.rpartition(":")
            links.insert(0, f'<a href="{e(_link(file, report_dir))}">console</a> (bytes {e(span)})')
        device_type = sessions[(a["run_id"], a["source"])]["device_type"]
        cells = (device_type, a["suite"], a["local"], a["outcome"], f"{a.get('seconds', 0):.2f}")
        rows.append(
            f'<tr bgcolor="{_OUTCOME_COLOUR.get(a["outcome"], "#eeeeee")}">'
            + "".join(f"<td>{e(v)}</td>" for v in cells)
            + f"<td>{e(reason)}</td><td>{timings}</td><td>{'<br>'.join(links)}</td></tr>"
        )
    head = "".join(f"<th>{c}</th>" for c in ("device type", "suite", "test", "outcome", "s",
                                             "skip or failure reason", "measured", "artifacts"))  # fmt: skip
    table = '<table border="1" cellpadding="3" cellspacing="0">'
    return [
        "<h2>Sessions</h2><ul>" + "".join(listed) + "</ul>",
        f"<h2>Every test</h2>{table}<tr>{head}</tr>{''.join(rows)}</table>",
    ]
