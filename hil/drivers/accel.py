"""Choose QEMU's accelerator: KVM only where it really works, TCG otherwise, and say why."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hil.errors import QemuError


@dataclass(frozen=True)
class Accel:
    """The accelerator chosen and the reason, for the log and the JUnit properties."""

    name: str
    reason: str


def kvm_problem(kvm: Path = Path("/dev/kvm"), cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """Why KVM cannot be trusted on this host, or None when it can."""
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
    # Without vmx/svm, /dev/kvm is a nested scheme that emulates the guest and dies on the first
    # instruction it cannot handle (FIELD-NOTES: "KVM internal error ... emulation failure").
    if "vmx" not in flags and "svm" not in flags:
        return f"{kvm} exists but the CPU has no vmx/svm flag (nested KVM without hardware support)"
    return None


def pick_accel(requested: str, kvm: Path = Path("/dev/kvm"), cpuinfo: Path = Path("/proc/cpuinfo")) -> Accel:
    """Resolve `auto`, `kvm` or `tcg` into the accelerator to use; `kvm` on a host without it is an error."""
    if requested == "tcg":
        return Accel("tcg", "the rig asks for TCG")
    problem = kvm_problem(kvm, cpuinfo)
    if problem is None:
        return Accel("kvm", "KVM is usable (hardware virtualisation present)")
    if requested == "kvm":
        raise QemuError(f"the rig asks for KVM but {problem}; set qemu.accel to auto or tcg")
    return Accel("tcg", f"TCG because {problem}")
