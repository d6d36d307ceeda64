"""The gate policy (`gate.yaml`): which suites must pass on which device types; errors name file:line."""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

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
        return any(fnmatch.fnmatchcase(test, p) or fnmatch.fnmatchcase(short, p) for p in self.allow_skips)


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
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RigConfigError(f"{path}: cannot read the gate policy ({exc.strerror})") from exc
    text = data.decode(errors="replace")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "?"
        raise RigConfigError(f"{path}:{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    try:
        model = PolicyModel.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        problems = [
            f"{path}:{_line_of(root, [str(p) for p in e['loc']])}: "
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise RigConfigError("; ".join(problems)) from exc
    return Policy(path=str(path), sha256=hashlib.sha256(data).hexdigest(), model=model)


def _line_of(node: yaml.Node | None, loc: list[str]) -> int:
    """The 1-based line of the deepest YAML node that `loc` reaches (the parent, for a missing key)."""
    if node is None:
        return 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    # An unexpected key is best shown at the key itself.
                    child = value if part != loc[-1] else key
                    break
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            child = node.value[int(part)]
        if child is None:
            break
        node = child
    return node.start_mark.line + 1
