"""Choose QEMU's accelerator: KVM only where it really works, TCG otherwise, and say why."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from hil.errors import QemuError


@dataclass(frozen=True)
class Accel:
    """The accelerator chosen and the reason, for the log and the JUnit properties."""

    name: str
    reason: str


def kvm_problem(
    kvm: Path = Path("/dev/kvm"),
    cpuinfo: Path = Path("/proc/cpuinfo"),
    *,
    guest: str = "x86_64",
    host: str | None = None,
) -> str | None:
    """Why KVM cannot be trusted on this host for a `guest`-architecture board, or None when it can."""
    host = host or platform.machine()
    if host != guest:
        return f"the host is {host} and KVM runs only {host} guests, not {guest}"
    if not kvm.exists():
        return f"{kvm} does not exist"
    if not os.access(kvm, os.R_OK | os.W_OK):
        return f"{kvm} is not readable and writable by this user"
    flags = next(
        (
            line.split(":", 1)[1].split()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("flags")
        ),
        [],
    )
    # Without vmx/svm, /dev/kvm on x86 is a nested scheme that emulates the guest and dies on the first
    # instruction it cannot handle ("KVM internal error ... emulation failure"). An Arm host's /dev/kvm
    # exists only where the CPU virtualises.
    if host == "x86_64" and "vmx" not in flags and "svm" not in flags:
        return f"{kvm} exists but the CPU has no vmx/svm flag (nested KVM without hardware support)"
    return None


def pick_accel(
    requested: str,
    kvm: Path = Path("/dev/kvm"),
    cpuinfo: Path = Path("/proc/cpuinfo"),
    *,
    guest: str = "x86_64",
    host: str | None = None,
) -> Accel:
    """Resolve `auto`, `kvm` or `tcg` into the accelerator to use; `kvm` on a host without it is an error."""
    if requested == "tcg":
        return Accel("tcg", "the rig asks for TCG")
    problem = kvm_problem(kvm, cpuinfo, guest=guest, host=host)
    if problem is None:
        return Accel("kvm", "KVM is usable (hardware virtualisation present)")
    if requested == "kvm":
        raise QemuError(f"the rig asks for KVM but {problem}; set qemu.accel to auto or tcg")
    return Accel("tcg", f"TCG because {problem}")
