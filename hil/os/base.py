"""The OS profile interface: login, SSH, where things live and how to ask the DUT about itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Feature name -> what an OS with it does, as a skip reason completes the sentence "does not ...".
FEATURES = {
    "config-dns": "take its DNS servers from config.json (dnsServers)",
    "config-ntp": "take its NTP servers from config.json (ntpServers)",
    "https-time": "set its clock from an HTTPS Date header (config.json apiEndpoint, balenaRootCA)",
    "persisted-clock": "restore a saved clock at boot when it has no RTC (fake hwclock)",
    "time-ordering": "log when its clock is set and when its time-dependent services start",
}


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
    # Networking and time (suites/networking, suites/time_sync). Shell snippets run on the DUT.
    wired_interface: str = "eth0"
    resolve_command: str = ""  # the IPv4 addresses the system resolver gives for {name}, one a line
    download_command: str = ""  # fetch {url} into {dest}; non-zero exit on failure
    dhcp_renew_command: str = ""  # make the DHCP client renew its lease now ("": the OS has none)
    clock_command: str = "date +%s.%N"  # the system clock in Unix seconds, with a fraction
    chronyc: str = "chronyc"
    boot_log_command: str = "dmesg"
    time_set_pattern: str = ""  # boot-log line: the clock has been set (by NTP or HTTPS)
    time_dependent_pattern: str = ""  # boot-log line: a time-dependent service started
    https_time_pattern: str = ""  # boot-log line: the clock was set from an HTTPS Date header
    # What the OS does that suites check beyond booting (see FEATURES); a test that needs one the profile
    # lacks is skipped, naming it.
    features: frozenset[str] = frozenset()
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

    def lacks(self, feature: str) -> str | None:
        """Why a test needing `feature` does not apply to this OS, or None when it does."""
        if feature not in FEATURES:
            raise KeyError(f"unknown OS feature {feature!r}; known: {', '.join(sorted(FEATURES))}")
        if feature in self.features:
            return None
        return f"OS profile {self.name!r} does not {FEATURES[feature]}"

    def bound(self, name: str) -> float:
        """A named bound; a missing one is a profile bug, said plainly."""
        if name not in self.bounds:
            raise KeyError(f"OS profile {self.name!r} states no bound {name!r}")
        return self.bounds[name]
