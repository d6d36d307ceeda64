"""Host processes hil starts (QEMU, chronyd, dnsmasq, ...): find the program, a free port, and make the
kernel kill the child if hil dies, so no board or server outlives its test run."""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket

from hil.errors import ToolMissing

_PR_SET_PDEATHSIG = 1


def tool(name: str, package: str) -> str:
    """The path of a host program (PATH, then the sbin dirs), or ToolMissing naming its Debian package."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not path:
        raise ToolMissing(f"{name} is not installed (apt-get install {package})")
    return path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that nothing listens on right now (TCP or, with SOCK_DGRAM, UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """A Popen preexec_fn: only prctl, so nothing can deadlock after fork; the child gets SIGKILL with us."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
