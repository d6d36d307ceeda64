"""Point the DUT at the rig's DNS or NTP server the way its OS takes one, and take it back afterwards.

An OS that reads config.json (`via: config`) gets the server at flash time; any other gets it from the
profile's `apply` command over SSH, and its `revert` command when the test module is done. A reflash
wipes such drop-ins too, but a module that does not reflash must not leave them for the next one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from hil.dut.dut import Dut, State
from hil.errors import HilError
from hil.os.model import RigServer
from hil.services.dns import DOMAIN

log = logging.getLogger("hil.services")

CONFIG_KEYS = {"dns": "dnsServers", "ntp": "ntpServers"}


def _values(address: str) -> dict[str, str]:
    host, _, port = address.rpartition(":")
    return {"address": address, "host": host, "port": port, "domain": DOMAIN}


def rig_server_config(server: RigServer | None, role: str, address: str) -> dict[str, Any]:
    """The config.json entries that point an OS taking its servers from config.json at `address`."""
    if server is None or server.via != "config":
        return {}
    return {CONFIG_KEYS[role]: server.config_value.fill(**_values(address))}


@contextlib.contextmanager
def rig_server_applied(dut: Dut, server: RigServer | None, address: str) -> Iterator[None]:
    """Inside, an OS configured by commands uses the server at `address` (`host:port`)."""
    if server is None or server.via != "command":
        yield
        return
    assert server.apply is not None and server.revert is not None
    dut.run(server.apply.render(**_values(address))).check()
    try:
        yield
    finally:
        if dut.broken is None and dut.state == State.READY:
            try:
                dut.run(server.revert.render(**_values(address))).check()
            except HilError as exc:
                log.warning("%s: could not take back %s: %s", dut.rig.name, server.revert, exc)
