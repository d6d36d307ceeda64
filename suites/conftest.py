"""Shared by every suite: the rig-side servers (NTP, DNS, HTTP(S)) and the `requires(feature)` skip."""

pytest_plugins = ["hil.services.fixtures"]
