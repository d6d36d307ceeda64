"""A fault run's outcome: one cell per fault (caught by the test it names, missed, not injected, or not
applicable), the matrix of faults against suites, and each suite's score."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Outcome = Literal["caught", "missed", "not injected", "not applicable"]
COUNTED: tuple[Outcome, ...] = (
    "caught",
    "missed",
    "not injected",
)  # an applicable fault ends in one of these


@dataclass(frozen=True)
class Cell:
    """How one fault ended: the suite that should catch it, the outcome, and the evidence."""

    fault: str
    suite: str
    outcome: Outcome
    test: str  # the test that must catch it
    line: str = ""  # the first line of its failure, or why it was missed or not injected
    seconds: float = 0.0
    also_failed: tuple[str, ...] = ()  # other tests that failed with the fault in place
    artifacts: str = ""

    @property
    def applicable(self) -> bool:
        return self.outcome in COUNTED


@dataclass
class Matrix:
    """A `hil faults run`: what was tested, the control, and a cell per fault."""

    rig: str
    device_type: str
    image: str
    image_sha256: str
    os_profile: str
    control: str  # "run RUN_ID" (this run's, or a recorded one's)
    started: str
    finished: str = ""
    cells: list[Cell] = field(default_factory=list)
    id: int = 0  # its row in the store's fault_matrices once recorded and read back; 0 before

    @property
    def applicable(self) -> list[Cell]:
        return [c for c in self.cells if c.applicable]

    @property
    def caught(self) -> int:
        return sum(c.outcome == "caught" for c in self.cells)

    @property
    def passed(self) -> bool:
        """Every applicable fault caught (and at least one was tried)."""
        return bool(self.applicable) and all(c.outcome == "caught" for c in self.applicable)

    def scores(self) -> dict[str, tuple[int, int]]:
        """Suite -> (faults it caught, applicable faults it should catch)."""
        scores: dict[str, tuple[int, int]] = {}
        for cell in self.applicable:
            caught, total = scores.get(cell.suite, (0, 0))
            scores[cell.suite] = (caught + (cell.outcome == "caught"), total + 1)
        return scores

    def cells_json(self) -> list[dict]:
        return [asdict(c) for c in self.cells]


_MARK: dict[Outcome, str] = {
    "caught": "caught",
    "missed": "MISSED",
    "not injected": "NOT INJECTED",
    "not applicable": "n/a",
}


def render(matrix: Matrix) -> str:
    """The matrix as text: faults against suites, then a line a fault, then the scores."""
    suites = sorted({c.suite for c in matrix.cells})
    width = max([len(c.fault) for c in matrix.cells] + [5])
    lines = [f"{'fault':{width}}  " + "  ".join(f"{s:14}" for s in suites)]
    for cell in matrix.cells:
        marks = [(_MARK[cell.outcome] if s == cell.suite else "-") for s in suites]
        lines.append(f"{cell.fault:{width}}  " + "  ".join(f"{m:14}" for m in marks))
    lines.append("")
    for cell in matrix.cells:
        said = f": {cell.line}" if cell.line else ""
        lines.append(f"{cell.fault}: {_MARK[cell.outcome]} ({cell.suite} {cell.test}){said}")
        if cell.also_failed:
            lines.append(f"    also failed: {', '.join(cell.also_failed[:5])}")
    scores = ", ".join(f"{s} {c}/{t}" for s, (c, t) in sorted(matrix.scores().items()))
    lines.append(f"\nscore: {scores or 'no applicable faults'}; control: {matrix.control}")
    verdict = (
        "every applicable fault was caught" if matrix.passed else "NOT every applicable fault was caught"
    )
    lines.append(f"{matrix.caught} of {len(matrix.applicable)} applicable faults caught: {verdict}")
    return "\n".join(lines)
