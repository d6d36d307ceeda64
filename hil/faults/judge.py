"""Whether a fault's session caught it: the test the catalogue names failed, with a failure message that
matches. A pass, a skip, a failure for another reason or a test that never ran is a miss; a fixture that
failed elsewhere catches nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hil.faults.matrix import Cell
from hil.faults.model import NamedFault
from hil.results.model import ERROR, FAILED
from hil.results.read import read_results


def judge(named: NamedFault, artifacts: Path, seconds: float) -> Cell:
    """The cell for `named` from the results its session wrote into `artifacts`."""
    wanted = named.fault.caught_by
    cell = Cell(fault=named.name, suite=wanted.suite, outcome="missed", test=wanted.test,
                seconds=round(seconds, 1), artifacts=str(artifacts))  # fmt: skip
    results = read_results([artifacts])
    if results.problems or not results.attempts:
        why = results.problems[0] if results.problems else "the session wrote no results"
        return replace(cell, outcome="missed", line=f"no results to judge: {why}")
    failed = tuple(f"{a.suite} {a.local}" for a in results.attempts if a.outcome in (FAILED, ERROR))
    mine = [a for a in results.attempts if a.suite == wanted.suite and a.local == wanted.test]
    others = tuple(f for f in failed if f != f"{wanted.suite} {wanted.test}")
    if not mine:
        return replace(cell, outcome="missed", line="the test did not run", also_failed=others)
    attempt = mine[-1]
    first = _first_line(attempt.message)
    if attempt.outcome in (FAILED, ERROR) and named.fault.catches(
        attempt.suite, attempt.local, attempt.message
    ):
        return replace(cell, outcome="caught", line=first, also_failed=others)
    skipped_for_role = any(f"no {role} bundle" in attempt.message for role in named.fault.bundles.values())
    if skipped_for_role:
        return replace(cell, outcome="not applicable", line=first)
    how = {FAILED: "failed for another reason", ERROR: "errored for another reason"}.get(attempt.outcome)
    line = f"{how}: {first}" if how else f"{attempt.outcome}{': ' + first if first else ''}"
    return replace(cell, outcome="missed", line=line, also_failed=others)


def _first_line(message: str) -> str:
    """The failure's first line; one that only introduces what follows (ends in ':') takes the next too."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""
