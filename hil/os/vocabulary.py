"""The closed sets OS profiles, suites and fault catalogues name things by: OS features (what an OS does,
declared or following from its profile), the bundle roles of the update suite, the refusals an updater
owes and the kinds of rollback. Written out as Literals so that a type checker reads them, and kept in
one place so that a profile, a suite's marker and a catalogue can never disagree on a name.
"""

from __future__ import annotations

from typing import Literal, get_args

# OS features are a closed set, written out so that a type checker reads it: a misspelt name in
# `dut.require_os(...)` fails the check, and `requires_os` markers and `require_os` calls in a suite are
# refused at collection (hil.pytestplugin.hooks). Declared features are listed in a profile's
# `features`; derived ones follow from what it states.
DeclaredFeature = Literal["config-hostname", "https-time", "persisted-clock", "time-ordering", "steps-clock"]
DerivedFeature = Literal[
    "console-login",
    "ab-update",
    "rig-dns",
    "rig-ntp",
    "dhcp-renew",
    "failed-units",
    "ready-check",
    "image-identity",
    "bundle-signatures",
]
OsFeature = Literal[DeclaredFeature, DerivedFeature]
OS_FEATURES: tuple[OsFeature, ...] = get_args(OsFeature)

# Feature -> what an OS with it does; a skip reason completes the sentence "does not ...".
DECLARED_FEATURES: dict[DeclaredFeature, str] = {
    "config-hostname": "take its hostname from config.json",
    "https-time": "set its clock from an HTTPS Date header (config.json apiEndpoint, balenaRootCA)",
    "persisted-clock": "restore a saved clock at boot when it has no RTC",
    "time-ordering": "log when its clock is set and when its time-dependent services start",
    "steps-clock": "step a clock that is off by more than a second at any time (chrony makestep 1 -1)",
}
DERIVED_FEATURES: dict[DerivedFeature, str] = {
    "console-login": "offer hil a console login (the profile gives no login credentials)",
    "ab-update": "have A/B root partitions with host OS updates and rollback",
    "rig-dns": "let hil point its resolver at the rig's DNS server",
    "rig-ntp": "let hil point its clock at the rig's NTP server",
    "dhcp-renew": "state a command that renews its DHCP lease",
    "failed-units": "list the services that failed (systemd units)",
    "ready-check": "state a command that waits until its boot has finished",
    "image-identity": "state how to read which image it runs (device type, version or root partition)",
    "bundle-signatures": "refuse an update bundle signed by a key it does not trust",
}
FEATURES: dict[OsFeature, str] = dict([*DECLARED_FEATURES.items(), *DERIVED_FEATURES.items()])
if set(OS_FEATURES) != set(FEATURES):  # a feature named but not described, or described but not named
    raise TypeError(f"OS features and their descriptions differ: {sorted(set(OS_FEATURES) ^ set(FEATURES))}")

# The bundles the hostapp-update suite installs, named by what each is for: one that lands, and each way
# an update must fail safely. hil builds them for its own images; a team names its own files per role
# (--update-bundles), and a role with no bundle skips its test, naming the role.
BundleRole = Literal[
    "good", "never-boots", "kernel-panics", "health-fails", "other-compatible", "other-key", "truncated"
]
BUNDLE_ROLES: tuple[BundleRole, ...] = get_args(BundleRole)
# The roles an updater must refuse before it writes anything, each with what its refusal says.
RefusedRole = Literal["other-compatible", "other-key", "truncated"]
# How an update can be undone by the OS itself: the bootloader gave up on a slot that never came up
# (altboot), or the booted update judged itself unhealthy (health; health_failed: it then also failed).
RollbackKind = Literal["altboot", "health", "health_failed"]
