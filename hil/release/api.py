"""Gating a release end to end: read results, decide, finalize or record, write the evidence and reports."""

from __future__ import annotations

import getpass
import html
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from hil.errors import GateRefused, HilError
from hil.images.hash import image_sha256
from hil.release import report
from hil.release.catalog import Catalog
from hil.release.gate import REFUSED, Decision, evaluate
from hil.release.missing import read_missing
from hil.release.policy import Policy, load_policy
from hil.release.sessions import Subject
from hil.release.sqlite_store import SqliteStore
from hil.release.store import (
    DRY_RUN,
    FINAL,
    INVALIDATED,
    NOT_FINALIZED,
    DecisionInterrupted,
    Release,
    ReleaseImage,
    ReleaseStore,
    is_final_outcome,
)
from hil.results.model import RecordedJunit
from hil.results.read import read_results
from hil.runs.store import RunStore
from hil.runs.trends import SHOWN, boot_plot
from hil.store.url import store_url
from hil.util.paths import cache_dir

# What the report says while the store has not answered yet.
PENDING = "finalizing (the store has not confirmed it yet)"


@dataclass(frozen=True)
class GateResult:
    """What a gate run decided, what it did to the store, and where the summaries are."""

    decision: Decision
    outcome: str
    evidence: dict
    report_dir: Path
    warning: str = ""

    @property
    def finalized(self) -> bool:
        """True when the release is final and this evidence passed (finalized now, or already final)."""
        return self.decision.passed and is_final_outcome(self.outcome)

    @property
    def exit_code(self) -> int:
        """0 when the release is (or, in a dry run, would be) final on this evidence, else 1."""
        return 0 if self.finalized or (self.decision.passed and self.outcome == DRY_RUN) else 1

    @property
    def text(self) -> str:
        """The decision table and verdict, for a terminal."""
        text = report.terminal(self.decision, self.outcome) + f"\nreport: {self.report_dir / 'summary.html'}"
        return text + (f"\nwarning: {self.warning}" if self.warning else "")


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
    catalog: Catalog,
    policy: Path | None = None,
    dry_run: bool = False,
    report_dir: Path | None = None,
    images: dict[str, ReleaseImage] | None = None,
    session_status: int | None = None,
    runs: list[RecordedJunit] | None = None,
    build_tag: str | None = None,
    missing_from: Path | None = None,
) -> GateResult:
    """Decide on `release_id` from the result dirs and recorded `runs` (the CI build `build_tag`'s, when
    found by it); finalize it only when every required cell passed.

    `images` are images named at the gate (device type -> image): they must be the ones the release
    records, and they name the image of a release that records none (balena's). `session_status` is
    pytest's exit status when the caller ran the suites itself. `missing_from` is CI's file of why some
    device types have no results (`hil.release.missing`): each is refused with its reason, and a file
    that cannot be read as such stops the gate before it decides.
    """
    loaded = load_policy(policy)
    release = store.get(release_id)
    named, image_reasons = _images(release, images or {})
    subject = _subject(release, loaded, named)
    missing = read_missing(missing_from, subject.device_types) if missing_from is not None else {}
    found = read_results(results, runs or ())
    decision = evaluate(loaded, found, subject, catalog, missing=missing)
    for reason in (*image_reasons, *_objections(release, session_status)):
        decision = _with_reason(decision, reason)
    decided_at = datetime.now(UTC)
    evidence = {
        "release": asdict(release),
        "decided_at": decided_at.isoformat(timespec="seconds"),
        "who": who(),
        "policy": {"path": loaded.path, "sha256": loaded.sha256},
        "images": {dt: asdict(image) for dt, image in named.items()},
        "suites": catalog.evidence(),
        "pytest_exit_status": session_status,
        "results": _sources(results, runs or (), build_tag, found.files),
        "missing": {"from": str(missing_from), "device_types": missing} if missing_from is not None else None,
        "decision": decision.as_dict(),
        **found.evidence(),
    }
    stamp = decided_at.strftime("%Y%m%dT%H%M%S%f")
    out_dir = Path(report_dir) if report_dir else cache_dir() / "reports" / f"release-{release.id}" / stamp
    plots = boot_plots(store, decision.device_types)
    # Reports first: a decision that cannot be written down must not change the store.
    _write_before_acting(out_dir, release, decision, DRY_RUN if dry_run else PENDING, evidence, plots)
    outcome = DRY_RUN if dry_run else _act_reported(store, release, decision, evidence, out_dir, plots)
    evidence["outcome"] = outcome
    warning = _write_after_acting(out_dir, decision, outcome, evidence, plots)
    return GateResult(
        decision=decision, outcome=outcome, evidence=evidence, report_dir=out_dir, warning=warning
    )


def _sources(
    results: list[Path], runs: Sequence[RecordedJunit], build_tag: str | None, files: dict[str, str]
) -> dict[str, object]:
    """Where the evidence came from: result directories, recorded runs (and their build tag), files."""
    return {"dirs": [str(d) for d in results], "runs": [r.source for r in runs], "build_tag": build_tag,
            "files": files}  # fmt: skip


def recorded_runs(
    store: RunStore, run_ids: Sequence[str], build_tag: str | None = None
) -> list[RecordedJunit]:
    """The recorded JUnit files a gate judges: the runs named by id (`--run`), and every run of the CI
    build `build_tag` (`--build-tag`), each once. A tag that names no run refuses: a build with no
    recorded run has nothing to pass on."""
    ids = list(dict.fromkeys(run_ids))
    if build_tag is not None:
        tagged = store.tagged(build_tag)
        if not tagged:
            raise GateRefused(f"build tag {build_tag} names no run recorded in {store.where}: there is "
                              f"nothing to judge (see `hil runs list --build-tag {build_tag}`)")  # fmt: skip
        ids += [run_id for run_id in tagged if run_id not in ids]
    return [store.junit(run_id) for run_id in ids]


def _subject(release: Release, policy: Policy, images: dict[str, ReleaseImage]) -> Subject:
    """What the results must be about: the release, its device types and the images it ships."""
    # balena releases carry no device types of their own: the policy's list is the requirement.
    device_types = tuple(release.device_types) or tuple(policy.model.device_types)
    return Subject(release.id, release.version, device_types, {dt: i.sha256 for dt, i in images.items()})


def _objections(release: Release, session_status: int | None) -> list[str]:
    """Reasons to refuse that lie outside the results: a session that did not finish, an invalidated
    release."""
    reasons = []
    if session_status not in (None, 0, 1):
        reasons.append(
            f"pytest ended with exit status {session_status}: an interrupted or broken session is never "
            "evidence for a final release"
        )
    if release.status == INVALIDATED:
        reasons.append(f"release {release.id} is invalidated")
    return reasons


def _write_before_acting(
    out_dir: Path, release: Release, decision: Decision, outcome: str, evidence: dict, plots: Sequence[str]
) -> None:
    """The reports as they stand before the store is asked; HilError, and the store left alone, when
    they cannot be written."""
    try:
        _write_reports(out_dir, decision, outcome, evidence, plots)
    except OSError as exc:
        raise HilError(f"cannot write the gate report to {out_dir} ({exc.strerror}); release {release.id} "
                       "was left as it was") from None  # fmt: skip


def _write_after_acting(
    out_dir: Path, decision: Decision, outcome: str, evidence: dict, plots: Sequence[str]
) -> str:
    """The reports again, with what the store did; a warning when they cannot be (the store has acted)."""
    try:
        _write_reports(out_dir, decision, outcome, evidence, plots)
    except OSError as exc:
        return f"the report in {out_dir} could not be updated ({exc.strerror}); the store says: {outcome}"
    return ""


def _act_reported(
    store: ReleaseStore, release: Release, decision: Decision, evidence: dict, out_dir: Path, plots: list[str]
) -> str:
    """_act; when the store's connection drops meanwhile, the report says the release was left as it was
    (it must not go on saying "finalizing") and the error goes on to the caller."""
    try:
        return _act(store, release, decision, evidence)
    except DecisionInterrupted as exc:
        _write_after_acting(out_dir, decision, f"{NOT_FINALIZED}: {exc}", evidence, plots)
        raise


def _act(store: ReleaseStore, release: Release, decision: Decision, evidence: dict) -> str:
    """Finalize on passing evidence, else record the refusal; what the store did."""
    if decision.passed:
        try:
            return store.finalize(release.id, evidence)
        except DecisionInterrupted:  # nothing to record: the store is not answering
            raise
        except HilError as exc:
            # Passing evidence, but the store said no (API error, invalidated meanwhile): it stays draft.
            outcome = f"{NOT_FINALIZED}: {exc}"
    else:
        outcome = NOT_FINALIZED + (" (it was already final)" if release.status == FINAL else "")
    store.record(release.id, {**evidence, "outcome": outcome})
    return outcome


def _images(release: Release, given: dict[str, ReleaseImage]) -> tuple[dict[str, ReleaseImage], list[str]]:
    """The image per device type the results must be about: the release's own, else the one named at the
    gate; an image named at the gate that is not the release's is a reason to refuse."""
    reasons = [
        f"--image {image.path} (sha256 {image.sha256}) is not the image release {release.id} ships for "
        f"{dt} (sha256 {release.images[dt].sha256})"
        for dt, image in sorted(given.items())
        if dt in release.images and release.images[dt].sha256 != image.sha256
    ]
    return {**given, **release.images}, reasons


def gate_run(
    *,
    results: list[Path],
    device_type: str,
    image: Path,
    catalog: Catalog,
    version: str | None = None,
    policy: Path | None = None,
    store: str | Path | None = None,
    report_dir: Path | None = None,
    session_status: int | None = None,
) -> GateResult:
    """What `hil run` ends with: find or create the draft of `image` for `version` in the sqlite store,
    then gate it.

    Without `version`, the release is for the OS version the DUT reported in the results about this
    image (exactly one).
    """
    shipped = ReleaseImage(sha256=image_sha256(image), path=str(image))
    if version is None:
        found = read_results(results)
        reported = {
            s.os_version
            for s in found.sessions
            if s.device_type == device_type and s.image_sha256 == shipped.sha256 and s.os_version
        }
        if len(reported) != 1:
            listed = ", ".join(sorted(reported)) or "none (did the DUT boot?)"
            raise GateRefused(f"cannot tell which release to gate: the results report OS versions {listed}")
        (version,) = reported
    sqlite = SqliteStore(store)
    release = sqlite.find_or_create_draft(version, {device_type: shipped})
    return gate_release(
        sqlite,
        release.id,
        results=results,
        catalog=catalog,
        policy=policy,
        report_dir=report_dir,
        session_status=session_status,
    )


def boot_plots(store: ReleaseStore, device_types: Sequence[str]) -> list[str]:
    """The dashboard's boot-time plot for each gated device type, from the runs recorded in the sqlite
    store (the release store's file, or the default one when releases live elsewhere); none without it."""

    where = store.db.url if isinstance(store, SqliteStore) else store_url()
    if where.path is not None and not where.path.is_file():
        return []
    try:
        runs = RunStore(where)
        return [boot_plot(dt, runs.runs(limit=SHOWN, device_type=dt)[::-1]) for dt in device_types]
    except HilError as exc:
        # The history is for people; a store it cannot be read from must not stop the decision.
        return [f"<p>No trend: {html.escape(str(exc))}</p>"]


def _with_reason(decision: Decision, reason: str) -> Decision:
    return replace(decision, verdict=REFUSED, reasons=(*decision.reasons, reason))


def _write_reports(
    out_dir: Path, decision: Decision, outcome: str, evidence: dict, plots: Sequence[str] = ()
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.md").write_text(report.markdown(decision, outcome, out_dir))
    (out_dir / "summary.html").write_text(report.render_html(decision, outcome, out_dir, evidence, plots))
    (out_dir / "evidence.json").write_text(json.dumps(evidence, indent=2, sort_keys=True) + "\n")
