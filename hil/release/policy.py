"""The gate policy (`gate.yaml`): which suites must pass on which device types, and which OS features
each OS profile may lack; errors name file:line."""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from hil.errors import RigConfigError
from hil.os import FEATURES
from hil.results.model import Unreadable, read_bounded
from hil.util import yamlconf
from hil.util.paths import shipped

# hil's default policy (shipped in the wheel, at the top of a checkout), used when neither --policy nor
# ./gate.yaml names another.
DEFAULT_POLICY = shipped("gate.yaml")
# A policy is a page of YAML; anything larger (or a FIFO, or a device) is a mistake, refused at once.
_MAX_POLICY_BYTES = 1 << 20


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


# A Literal built at import from the features hil knows: pydantic checks it, mypy cannot read it as a type.
OsFeature = Literal[tuple(sorted(FEATURES))]  # type: ignore[valid-type]


class OsProfileRule(BaseModel):
    """What the policy accepts from one OS profile."""

    model_config = ConfigDict(extra="forbid")

    # OS features this profile may lack: a test skipped because the OS lacks one of them does not refuse.
    # (OsFeature is a run-time Literal, see above.)
    may_lack: list[OsFeature] = Field(min_length=1)  # type: ignore[valid-type]


class PolicyModel(BaseModel):
    """The whole policy file."""

    model_config = ConfigDict(extra="forbid")

    # When set, results must be for this OS version whatever the release says.
    version: str | None = None
    device_types: dict[str, DeviceTypeRule] = Field(min_length=1)
    # OS profile name (a run's hil.os_profile) -> what it may lack.
    os_profiles: dict[str, OsProfileRule] = Field(default_factory=dict)


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

    def may_lack(self, os_profile: str, feature: str) -> bool:
        """True when the policy declares that OS profile `os_profile` may lack `feature`."""
        rule = self.model.os_profiles.get(os_profile)
        return bool(feature) and rule is not None and feature in rule.may_lack


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file; a mistake raises RigConfigError naming file:line: field."""
    if path is None:
        path = Path("gate.yaml") if Path("gate.yaml").is_file() else DEFAULT_POLICY
    path = Path(path)
    try:
        data = read_bounded(path, _MAX_POLICY_BYTES)
    except Unreadable as exc:
        raise RigConfigError(f"{path}: cannot read: {exc}") from None
    model = yamlconf.load(PolicyModel, path, RigConfigError)
    return Policy(path=str(path), sha256=hashlib.sha256(data).hexdigest(), model=model)
