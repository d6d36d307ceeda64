"""What running a command on a DUT returns, whichever channel (console or SSH) ran it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    """A finished command: what it printed and how it exited."""

    command: str
    output: str
    exit_code: int

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.exit_code == 0

    def check(self) -> CommandResult:
        """Return self, or raise AssertionError naming the command, its status and output."""
        if self.exit_code != 0:
            raise AssertionError(
                f"`{self.command}` exited {self.exit_code}; output:\n{self.output.strip()[-2000:]}"
            )
        return self
