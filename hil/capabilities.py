"""Board capabilities, the public names: what a rig can do beyond power, console and SSH.

The protocols live with the drivers that provide them (`hil.drivers.capabilities`); suites and users
import them from here.
"""

from hil.drivers.capabilities import (
    BOARD_CAPABILITIES,
    CAPABILITIES,
    NAMES,
    RIG_CAPABILITIES,
    BootCounter,
    BootSnapshots,
    HostedNetwork,
    LinkControl,
    NetworkCapture,
    PowerRelay,
    RtcControl,
    SdMuxControl,
    SerialLine,
    declared,
    provided,
)

__all__ = [
    "BOARD_CAPABILITIES",
    "CAPABILITIES",
    "NAMES",
    "RIG_CAPABILITIES",
    "BootCounter",
    "BootSnapshots",
    "HostedNetwork",
    "LinkControl",
    "NetworkCapture",
    "PowerRelay",
    "RtcControl",
    "SdMuxControl",
    "SerialLine",
    "declared",
    "provided",
]
