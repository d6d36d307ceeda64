"""Gating a release end to end: read results, decide, finalize or record, write the evidence and reports."""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from hil.errors import GateRefused, HilError
from hil.paths import cache_dir
from hil.release import report
from hil.release.gate import REFUSED, Decision, evaluate
from hil.release.policy import load_policy
from hil.release.results import read_results
from hil.release.sqlite_store import SqliteStore
from hil.release.store import (
    ALREADY_FINAL,
    DRY_RUN,
    FINAL,
    FINALIZED,
    INVALIDATED,
    NOT_FINALIZED,
    ReleaseStore,
)


@dataclass(frozen=True)
class GateResult:
    """What a gate run decided, what it did to the store, and where the summaries are."""

    decision: Decision
    outcome: str
    evidence: dict
    report_dir: Path

    @property
    def finalized(self) -> bool:
        """True when the release is final and this evidence passed (finalized now, or already final)."""
        return self.decision.passed and self.outcome in (FINALIZED, ALREADY_FINAL)

    @property
    def exit_code(self) -> int:
        """0 when the release is (or, in a dry run, would be) final on this evidence, else 1."""
        return 0 if self.finalized or (self.decision.passed and self.outcome == DRY_RUN) else 1

    @property
    def text(self) -> str:
        """The decision table and verdict, for a terminal."""
        return report.terminal(self.decision, self.outcome) + f"\nreport: {self.report_dir / 'summary.html'}"


def who() -> str:
    """Who decided: user@host, and the Jenkins build when there is one."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    build = os.environ.get("BUILD_URL")
    return f"{user}@{socket.gethostname()}" + (f" ({build})" if build else "")


def gate_release(
    store: ReleaseStore,
    release_id: str,
    *,
    results: list[Path],
    policy: Path | None = None,
    dry_run: bool = False,
    report_dir: Path | None = None,
    image: Path | None = None,
) -> GateResult:
    """Decide on `release_id` from the result dirs; finalize it only when every required cell passed."""
    loaded = load_policy(policy)
    release = store.get(release_id)
    found = read_results(results)
    # balena releases carry no device types of their own: the policy's list is the requirement.
    device_types = list(release.device_types) or list(loaded.model.device_types)
    decision = evaluate(
        loaded, found, release_id=release.id, version=release.version, device_types=device_types
    )
    if release.status == INVALIDATED:
        decision = _with_reason(decision, f"release {release.id} is invalidated")
    decided_at = datetime.now(UTC)
    evidence = {
        "release": asdict(release),
        "decided_at": decided_at.isoformat(timespec="seconds"),
        "who": who(),
        "policy": {"path": loaded.path, "sha256": loaded.sha256},
        "image": str(image) if image else None,
        "results": {"dirs": [str(d) for d in results], "files": found.files},
        "decision": decision.as_dict(),
        "attempts": [asdict(a) for a in found.attempts],
    }
    if dry_run:
        outcome = DRY_RUN
    elif decision.passed:
        try:
            outcome = store.finalize(release.id, evidence)
        except HilError as exc:
            # Passing evidence, but the store said no (API error, invalidated meanwhile): it stays draft.
            outcome = f"{NOT_FINALIZED}: {exc}"
            store.record(release.id, {**evidence, "outcome": outcome})
    else:
        outcome = NOT_FINALIZED + (" (it was already final)" if release.status == FINAL else "")
        store.record(release.id, {**evidence, "outcome": outcome})
    evidence["outcome"] = outcome
    stamp = decided_at.strftime("%Y%m%dT%H%M%S%f")
    out_dir = Path(report_dir) if report_dir else cache_dir() / "reports" / f"release-{release.id}" / stamp
    _write_reports(out_dir, decision, outcome, evidence)
    return GateResult(decision=decision, outcome=outcome, evidence=evidence, report_dir=out_dir)


def gate_run(
    *,
    results: list[Path],
    device_types: list[str],
    version: str | None = None,
    image: Path | None = None,
    policy: Path | None = None,
    store: Path | None = None,
    report_dir: Path | None = None,
) -> GateResult:
    """What `hil run` ends with: find or create the draft for `version` in the sqlite store, then gate it.

    Without `version`, the release is for the OS version the DUT reported in the results (exactly one).
    """
    if version is None:
        reported = {a.os_version for a in read_results(results).attempts if a.device_type in device_types}
        reported.discard("")
        if len(reported) != 1:
            found = ", ".join(sorted(reported)) or "none (did the DUT boot?)"
            raise GateRefused(f"cannot tell which release to gate: the results report OS versions {found}")
        (version,) = reported
    sqlite = SqliteStore(store)
    release = sqlite.find_or_create_draft(version, device_types)
    return gate_release(
        sqlite, release.id, results=results, policy=policy, report_dir=report_dir, image=image
    )


def _with_reason(decision: Decision, reason: str) -> Decision:
    return replace(decision, verdict=REFUSED, reasons=(*decision.reasons, reason))


def _write_reports(out_dir: Path, decision: Decision, outcome: str, evidence: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.md").write_text(report.markdown(decision, outcome, out_dir))
    (out_dir / "summary.html").write_text(report.render_html(decision, outcome, out_dir))
    (out_dir / "evidence.json").write_text(json.dumps(evidence, indent=2, sort_keys=True) + "\n")
