"""The one exception family: every error a technician can act on is a HilError."""

from __future__ import annotations


class HilError(Exception):
    """Base of hil's errors; its message is one line a user can act on."""


class RigConfigError(HilError):
    """A rig file (or another user-written YAML) is wrong: names the file, line and field."""


class CredentialsError(RigConfigError):
    """A credential the OS profile or rig names cannot be had (an unset password_env, an unreadable key)."""


class LoginRefused(HilError):
    """The DUT's console refused the login: a wrong user or password."""


class Unsupported(HilError):
    """The rig or the OS lacks what a test needs; the plugin turns it into a skip that names it."""

    def __init__(self, message: str, *, feature: str | None = None, capability: str | None = None) -> None:
        super().__init__(message)
        self.feature = feature
        self.capability = capability


class ImageError(HilError):
    """An image is missing, corrupt, or built for another device type."""


class ToolMissing(HilError):
    """A host program hil needs (qemu-system-x86_64, mkfs.vfat, ...) is not installed."""


class QemuError(HilError):
    """QEMU failed to start, died, or KVM failed under it."""


class ConsoleTimeout(HilError):
    """The console did not show what we waited for; carries the last lines received."""


class ConsoleClosed(HilError):
    """The console transport closed (QEMU exited, the serial adapter vanished)."""


class BootTimeout(HilError):
    """The DUT did not reach a login prompt (or SSH) within the rig's boot timeout."""


class SshError(HilError):
    """SSH to the DUT could not be set up or dropped mid-command."""


class DutBroken(HilError):
    """An earlier transition failed; later tests fail fast with the original reason."""


class FlashError(HilError):
    """Writing an image to a card failed, was refused, or did not verify."""


class LeaseError(HilError):
    """A rig is leased by another holder."""


class GateRefused(HilError):
    """The release gate refused to mark a release final."""


class FaultError(HilError):
    """A fault catalogue that cannot be read, or a fault run that cannot go on."""
