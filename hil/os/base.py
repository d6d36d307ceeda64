"""The OS profile interface: login, SSH, where things live and how to ask the DUT about itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OsProfile:
    """Facts and shell snippets about one OS; suites ask the profile, never hard-code them."""

    name: str
    login_user: str
    login_password: str | None
    ssh_user: str
    ssh_port: int
    login_prompt: str = r"login:\s*$"
    # Shell snippets run on the DUT; each prints one value.
    version_command: str = ". /etc/os-release && echo $VERSION_ID"
    slug_command: str = ". /etc/os-release && echo $SLUG"
    hostname_command: str = "hostname"
    booted_slot_command: str = ""
    env_slot_command: str = ""
    reboot_command: str = "reboot"
    # What the console shows once a reboot is really under way (the kernel prints it at emergency level),
    # so a login is never taken from the shell that is about to go down.
    restart_pattern: str = r"reboot: Restarting system"
    # Mount point -> "ro" or "rw": what a healthy DUT has.
    mounts: dict[str, str] = field(default_factory=dict)
    # Role (ssh, time) -> the process a healthy DUT runs for it (checked with pidof).
    services: dict[str, str] = field(default_factory=dict)
    # Host OS updates (suites/hostapp_update). `{bundle}` in update_command is the bundle's path on the DUT.
    update_command: str = ""
    update_writing_pattern: str = ""  # regex on the update's output: the write into the other root began
    data_dir: str = ""  # on the data partition: what an update must keep; bundles are put here too
    config_path: str = ""  # config.json as the DUT sees it
    boot_env_command: str = ""  # prints the whole boot environment (which root boots, what is pending)
    pending_update_command: str = ""  # prints 1 while an update waits to be tried or committed, else 0
    state_dir: str = ""
    # Role (altboot, health, health_failed) -> the breadcrumb in state_dir that a rollback leaves.
    rollback_breadcrumbs: dict[str, str] = field(default_factory=dict)
    # Bounds in seconds for waits the suites make; they belong to the OS, not to the tests.
    bounds: dict[str, float] = field(default_factory=dict)

    def config(
        self, *, hostname: str, ssh_public_key: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The config.json that configures this OS at flash time (balenaOS' format)."""
        config: dict[str, Any] = {"hostname": hostname, "os": {"sshKeys": [ssh_public_key]}}
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        return config

    def bound(self, name: str) -> float:
        """A named bound; a missing one is a profile bug, said plainly."""
        if name not in self.bounds:
            raise KeyError(f"OS profile {self.name!r} states no bound {name!r}")
        return self.bounds[name]
