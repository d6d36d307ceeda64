"""Host processes hil starts (QEMU, chronyd, dnsmasq, ...): find the program, a free port, and make sure
the child dies with hil, so no board or server outlives its test run."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess

from hil.errors import ToolMissing

_PR_SET_PDEATHSIG = 1
# The leader of a GroupWatchdog's group: it waits for the pipe to close, then kills its whole group.
# HUP and INT are ignored because an orphaned group holding a stopped member (a paused server) gets
# SIGHUP when hil dies, and the leader must live long enough to kill that member.
_WATCHDOG = "trap '' HUP INT; read _; kill -KILL 0"


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


class GroupWatchdog:
    """A process group that is killed as a whole when hil closes it or dies, members' cooperation unneeded.

    PR_SET_PDEATHSIG does not survive everything a server does at start (dnsmasq loses it even as
    root), so it cannot be relied on alone. Here the group's leader is a shell reading a pipe whose write
    end only hil holds: the kernel closes it when hil dies, even by SIGKILL, and the leader then SIGKILLs
    the group. The group is named by its living leader, so a recycled pid is never hit. Start members
    with `process_group=pgid`; one that makes a session of its own (setsid) escapes, which our servers'
    foreground modes do not do.
    """

    def __init__(self) -> None:
        read_end, self._write_end = os.pipe()  # not inheritable: no other child of hil holds it
        try:
            self._leader = subprocess.Popen(
                ["/bin/sh", "-c", _WATCHDOG], stdin=read_end, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, process_group=0,
            )  # fmt: skip
        except OSError:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)
        self.pgid = self._leader.pid

    def close(self) -> None:
        """Kill whatever is left in the group and reap its leader."""
        os.close(self._write_end)
        self._leader.wait()


def terminate(proc: subprocess.Popen, grace: float) -> None:
    """Ask a child to stop (SIGTERM: it may clean up, e.g. power its boards off), and kill it if it is
    still there after `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
