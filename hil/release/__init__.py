"""Release gating: results and a policy in; a draft becomes final only on complete, passing evidence."""

from hil.release.api import GateResult, gate_release, gate_run
from hil.release.gate import Decision

__all__ = ["Decision", "GateResult", "gate_release", "gate_run"]
