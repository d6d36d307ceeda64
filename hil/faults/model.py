"""A fault, as data: what it does to an image, what the OS must have for it to apply, and which test must
catch it with which failure message.

    stub-time-service:                       # a catalogue file: fault name -> fault
      description: chronyd exits 0 at once and does nothing
      needs: [rig-ntp]                       # OS features (the closed set the suites use)
      edits:
        - stub: /usr/sbin/chronyd            # a program that exits 0 and does nothing
      caught_by:
        suite: boot
        test: test_boot::test_system_services_are_running[time]
        message: "the time service 'chronyd' is not running"

Edits name paths as the running OS sees them; where each lands (which partition, every A/B slot) comes
from the OS profile's layout. The edits are a closed set: write, replace, stub, link, remove. A fault may
instead (or as well) have the suites install one bundle in the place of another (`bundles`), by role, or
change the root a bundle carries (`bundle_edits`: the same edits, made in the OS the update installs,
the bundle then rebuilt and signed again as the profile's `update.repack` says):

    update-never-commits:
      bundle_edits:
        good:                                # the bundle the update suite installs and expects to land
          - replace: {path: /usr/lib/hil/health-check, old: "bootenv_save && say", new: "false && say"}
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hil.os.shell import Regex
from hil.os.vocabulary import BundleRole, OsFeature


def _os_path(path: str) -> str:
    if not path.startswith("/") or ".." in path.split("/") or re.search(r"[\x00-\x1f]", path):
        raise ValueError("an absolute path inside the OS, without `..` or control characters")
    return path


# A path inside the OS as it runs: absolute, no `..`, no control characters.
OsPath = Annotated[str, StringConstraints(max_length=1024), AfterValidator(_os_path)]
FaultName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
# A test within its suite, as results name it: module::function, with its parameters.
TestId = Annotated[str, StringConstraints(pattern=r"^test_\w+::test_\w+(\[[^\]\n]{1,200}\])?$")]
MAX_CONTENT = 64 << 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Write(_Strict):
    """Put a file there, replacing what was (its directory must exist)."""

    path: OsPath
    content: str = Field(max_length=MAX_CONTENT)
    mode: int = Field(0o644, ge=0, le=0o7777, description="permissions, e.g. 0o755 or 493")


class Replace(_Strict):
    """Replace text in a file that must hold it (else the fault is not injected)."""

    path: OsPath
    old: str = Field(min_length=1, max_length=MAX_CONTENT)
    new: str = Field(max_length=MAX_CONTENT)


class Link(_Strict):
    """Make a path a symbolic link (a systemd unit linked to /dev/null is masked)."""

    path: OsPath
    target: str = Field(min_length=1, max_length=1024)


class Edit(_Strict):
    """One change to the image: exactly one of the fields."""

    write: Write | None = None
    replace: Replace | None = None
    stub: OsPath | None = Field(None, description="a program replaced by one that exits 0 and does nothing")
    link: Link | None = None
    remove: OsPath | None = None

    @model_validator(mode="after")
    def _one(self) -> Edit:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise ValueError(f"an edit is exactly one of write, replace, stub, link, remove (got {got})")
        return self

    @property
    def path(self) -> str:
        """The path the edit changes."""
        for value in (self.write, self.replace, self.link):
            if value is not None:
                return value.path
        return str(self.stub or self.remove)


class Catch(_Strict):
    """The test that must catch the fault, and what its failure message must say."""

    suite: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    test: TestId
    message: Regex


class Fault(_Strict):
    """One way to break an image, and who must notice."""

    description: str = Field(min_length=1, max_length=300)
    needs: frozenset[OsFeature] = frozenset()
    requires: tuple[OsPath, ...] = Field((), description="files that must be in the image to inject it")
    edits: tuple[Edit, ...] = ()
    bundles: dict[BundleRole, BundleRole] = Field(
        default_factory=dict, description="role -> the role whose bundle plays it (good: kernel-panics)"
    )
    bundle_edits: dict[BundleRole, tuple[Edit, ...]] = Field(
        default_factory=dict, description="role -> edits to the root its bundle installs"
    )
    caught_by: Catch

    @model_validator(mode="after")
    def _does_something(self) -> Fault:
        if not self.edits and not self.bundles and not any(self.bundle_edits.values()):
            raise ValueError("a fault needs edits, bundles, bundle_edits, or some of them")
        both = sorted(set(self.bundles) & set(self.bundle_edits))
        if both:
            raise ValueError(f"bundle role {both[0]} is both swapped (bundles) and edited (bundle_edits)")
        return self

    def catches(self, suite: str, test: str, message: str) -> bool:
        """Whether a failure of `test` in `suite` saying `message` is this fault caught."""
        wanted = self.caught_by
        said = re.search(wanted.message, message) is not None
        return suite == wanted.suite and test == wanted.test and said


class NamedFault(_Strict):
    """A fault of a catalogue, with its name and the file that defines it."""

    name: FaultName
    source: str
    fault: Fault
