"""The gate policy (`gate.yaml`): which suites must pass on which device types; errors name file:line."""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from hil import yamlconf
from hil.errors import RigConfigError

# The repository's default policy, used when neither --policy nor ./gate.yaml names another.
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "gate.yaml"


class SuiteRule(BaseModel):
    """What one suite must show on one device type."""

    model_config = ConfigDict(extra="forbid")

    # At least one, so a suite that ran nothing can never count as passed.
    min_tests: PositiveInt
    # Tests (fnmatch patterns on the test id or its last part) that may be skipped without refusing.
    allow_skips: list[str] = Field(default_factory=list)

    def skip_allowed(self, test: str) -> bool:
        """True when the policy lists `test` as one that may be skipped."""
        short = test.rsplit("::", 1)[-1]
        # Exact names first: a parametrized id like `test_x[ssh]` is a character class to fnmatch.
        return any(
            p in (test, short) or fnmatch.fnmatchcase(test, p) or fnmatch.fnmatchcase(short, p)
            for p in self.allow_skips
        )


class DeviceTypeRule(BaseModel):
    """The suites one device type must pass."""

    model_config = ConfigDict(extra="forbid")

    suites: dict[str, SuiteRule] = Field(min_length=1)


class PolicyModel(BaseModel):
    """The whole policy file."""

    model_config = ConfigDict(extra="forbid")

    # When set, results must be for this OS version whatever the release says.
    version: str | None = None
    device_types: dict[str, DeviceTypeRule] = Field(min_length=1)


@dataclass(frozen=True)
class Policy:
    """A validated policy, with where it came from and the hash recorded in the evidence."""

    path: str
    sha256: str
    model: PolicyModel

    @property
    def version(self) -> str | None:
        """The OS version the policy pins, if any."""
        return self.model.version

    def rules_for(self, device_type: str) -> DeviceTypeRule | None:
        """The rules for `device_type`, or None when the policy does not name it."""
        return self.model.device_types.get(device_type)


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file; a mistake raises RigConfigError naming file:line: field."""
    if path is None:
        path = Path("gate.yaml") if Path("gate.yaml").is_file() else DEFAULT_POLICY
    path = Path(path)
    model = yamlconf.load(PolicyModel, path, RigConfigError)
    return Policy(path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(), model=model)
