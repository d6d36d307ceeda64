"""`hil faults run`: a healthy control, then each fault on its own copy of the image, its suites run by
hil's plugin on as many boards as the rig allows, and the matrix of what caught what.

The control comes first: the suites (or just the tests that must catch, with `only_named`) on the image
as it is, or a recorded run of the same image in which all of those tests passed. A control that fails
computes no matrix: a fault cannot be told from a suite that fails anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hil.errors import FaultError, HilError
from hil.faults.catalogue import load_catalogue, not_applicable, select
from hil.faults.inject import NotInjected, copy_image, inject, remove_copy
from hil.faults.judge import judge
from hil.faults.matrix import Cell, Matrix, Outcome
from hil.faults.model import NamedFault
from hil.faults.record import FaultStore
from hil.faults.session import Session, run_session
from hil.images.hash import image_sha256
from hil.lab.rig import Rig
from hil.lab.suites import suite_paths
from hil.release.catalog import collect
from hil.results.model import FAILED, PASSED
from hil.results.read import read_results

log = logging.getLogger("hil.faults")


@dataclass(frozen=True)
class Options:
    """What `hil faults run` was asked."""

    rig: str
    image: Path
    artifacts: Path
    only_named: bool = False  # run only the tests that must catch, not their whole suites
    boards: int = 1
    pool_wait: float = 600.0
    timeout: float = 3600.0  # per session
    store: str | None = None
    fresh_control: bool = False  # run the control even when a recorded run could stand in
    device_type: str | None = None  # of an image that names none

    @property
    def session_extra(self) -> tuple[str, ...]:
        """What every session of the run is given."""
        return ("--device-type", self.device_type) if self.device_type else ()


def chosen_faults(rig: Rig, names: list[str] | None, suites: list[str] | None) -> list[NamedFault]:
    """The faults of the rig's OS profile that `names` and `suites` chose (all when None), each checked
    against the suites' tests: a fault naming a test its suite lacks is refused before anything boots."""
    faults = select(load_catalogue(rig.profile), names)
    if suites:
        faults = [f for f in faults if f.fault.caught_by.suite in suites]
    if not faults:
        raise FaultError(f"no faults to run for OS profile {rig.profile.name!r} (hil faults list)")
    suites = sorted({f.fault.caught_by.suite for f in faults})
    catalog = collect(suite_paths(suites))
    for named in faults:
        wanted = named.fault.caught_by
        if wanted.test not in catalog.suites.get(wanted.suite, frozenset()):
            raise FaultError(
                f"{named.source}: fault {named.name}: suite {wanted.suite} has no test {wanted.test}"
            )
    return faults


def run(rig: Rig, faults: list[NamedFault], options: Options, say: Callable[[str], None]) -> Matrix | None:
    """The matrix for `faults` (see chosen_faults); None when the control failed (say() told why)."""
    sha = image_sha256(options.image)
    matrix = Matrix(rig=options.rig, device_type=rig.device_type, image=str(options.image), image_sha256=sha,
                    os_profile=rig.profile.name, control="", started=_now())  # fmt: skip
    applicable: list[NamedFault] = []
    for named in faults:
        why = not_applicable(named.fault, rig.profile)
        if why:
            matrix.cells.append(_cell(named, "not applicable", why))
        else:
            applicable.append(named)
    if applicable:
        control = _control(applicable, options, sha, say)
        if control is None:
            return None
        matrix.control = control
        with ThreadPoolExecutor(max_workers=options.boards) as pool:
            done = pool.map(lambda n: _one(n, rig, options, say), applicable)
            matrix.cells += list(done)
    matrix.finished = _now()
    return matrix


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _cell(named: NamedFault, outcome: Outcome, line: str) -> Cell:
    wanted = named.fault.caught_by
    return Cell(fault=named.name, suite=wanted.suite, outcome=outcome, test=wanted.test, line=line)


def _targets(faults: list[NamedFault], only_named: bool) -> list[str]:
    """Suite folders, or with `only_named` the test ids that must catch, as pytest takes them."""
    folders = {p.name: p for p in suite_paths(sorted({f.fault.caught_by.suite for f in faults}))}
    if not only_named:
        return [str(folders[s]) for s in sorted(folders)]
    ids = []
    for named in faults:
        wanted = named.fault.caught_by
        module, _, test = wanted.test.partition("::")
        ids.append(f"{folders[wanted.suite] / (module + '.py')}::{test}")
    return sorted(set(ids))


def _control(faults: list[NamedFault], options: Options, sha: str, say: Callable[[str], None]) -> str | None:
    """The control (a run id) once every test that must catch has passed on the healthy image; None when
    one did not."""
    wanted = {(f.fault.caught_by.suite, f.fault.caught_by.test) for f in faults}
    recorded = None if options.fresh_control else _recorded_control(options, sha, wanted, say)
    if recorded:
        return recorded
    artifacts = options.artifacts / "control"
    say(f"hil faults: control: the healthy image first ({artifacts})")
    store = ("--hil-store", options.store) if options.store else ()
    session = Session(_targets(faults, options.only_named), options.rig, options.image, artifacts,
                      options.pool_wait, ("--hil-record-run", *store, *options.session_extra))  # fmt: skip
    ended = run_session(session, options.timeout)
    results = read_results([artifacts])
    outcome = {(a.suite, a.local): a.outcome for a in results.attempts}
    bad = sorted(
        f"{s} {t}: {outcome.get((s, t), 'did not run')}" for s, t in wanted if outcome.get((s, t)) != PASSED
    )
    if ended.status is None or bad or results.problems:
        why = "; ".join(bad[:5]) or "; ".join(results.problems[:2]) or f"stopped after {ended.seconds:.0f} s"
        say(f"hil faults: the control failed on the healthy image, so no fault can be judged: {why} "
            f"(logs: {artifacts})")  # fmt: skip
        return None
    others = sum(a.outcome == FAILED for a in results.attempts)
    if others:
        say(f"hil faults: note: {others} other test(s) failed in the control; a fault is judged by its test")
    return "run " + ", ".join(sorted({s.run_id for s in results.sessions}))


def _recorded_control(
    options: Options, sha: str, wanted: set[tuple[str, str]], say: Callable[[str], None]
) -> str | None:
    """A recorded run of this image in which every test that must catch passed, as the control."""
    try:
        recorded = FaultStore(options.store).healthy_run(sha, wanted)
    except HilError as exc:
        say(f"hil faults: no recorded control ({exc}); running one")
        return None
    if recorded:
        say(f"hil faults: control: recorded run {recorded} of this image passed every test that must catch")
        return f"recorded run {recorded}"
    return None


def _one(named: NamedFault, rig: Rig, options: Options, say: Callable[[str], None]) -> Cell:
    """Inject one fault into its own copy, run its suite on it, judge; the copy is removed after."""
    where = options.artifacts / f"fault-{named.name}"
    copies = where / "image"
    try:
        image = copy_image(options.image, copies)
        try:
            done = inject(named.fault, rig.profile, image, options.image.resolve().parent)
        except NotInjected as exc:
            say(f"hil faults: {named.name}: NOT INJECTED: {exc}")
            return _cell(named, "not injected", str(exc))
        where.mkdir(parents=True, exist_ok=True)
        (where / "injected.txt").write_text("".join(f"{line}\n" for line in done))
        swaps = tuple(
            a for role, other in named.fault.bundles.items() for a in ("--bundle-swap", f"{role}={other}")
        )
        session = Session(_targets([named], options.only_named), options.rig, image, where / "session",
                          options.pool_wait, (*swaps, *options.session_extra))  # fmt: skip
        say(f"hil faults: {named.name}: {named.fault.description}")
        ended = run_session(session, options.timeout)
        cell = judge(named, where / "session", ended.seconds)
        if ended.status is None:
            cell = _cell(
                named,
                "missed",
                f"the session was stopped after {ended.seconds:.0f} s ({options.timeout:.0f} s bound)",
            )
        said = f": {cell.line}" if cell.line else ""
        say(f"hil faults: {named.name}: {cell.outcome} ({ended.seconds:.0f} s){said}")
        return cell
    finally:
        remove_copy(copies)
