"""KVM only where it really works: a /dev/kvm without vmx/svm is the nested scheme that dies mid-boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.drivers.qemu.accel import pick_accel
from hil.errors import QemuError


@pytest.fixture
def kvm(tmp_path: Path) -> Path:
    path = tmp_path / "kvm"
    path.write_text("")
    return path


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
    return path


def test_auto_picks_tcg_when_the_cpu_has_no_virtualisation_flag(tmp_path: Path, kvm: Path) -> None:
    accel = pick_accel("auto", kvm, _cpuinfo(tmp_path, "hypervisor"))
    assert accel.name == "tcg"
    assert "no vmx/svm" in accel.reason


def test_auto_picks_kvm_when_it_really_works(tmp_path: Path, kvm: Path) -> None:
    assert pick_accel("auto", kvm, _cpuinfo(tmp_path, "vmx")).name == "kvm"


def test_auto_picks_tcg_without_dev_kvm(tmp_path: Path) -> None:
    accel = pick_accel("auto", tmp_path / "absent", _cpuinfo(tmp_path, "svm"))
    assert (accel.name, accel.reason) == ("tcg", f"TCG because {tmp_path / 'absent'} does not exist")


def test_asking_for_kvm_on_a_host_without_it_is_a_clear_error(tmp_path: Path, kvm: Path) -> None:
    with pytest.raises(QemuError, match=r"asks for KVM but .* no vmx/svm flag"):
        pick_accel("kvm", kvm, _cpuinfo(tmp_path, ""))


def test_tcg_is_taken_as_asked(tmp_path: Path, kvm: Path) -> None:
    assert pick_accel("tcg", kvm, _cpuinfo(tmp_path, "vmx")).name == "tcg"


def test_an_arm_board_on_an_x86_host_runs_under_tcg_even_where_kvm_works(tmp_path: Path, kvm: Path) -> None:
    accel = pick_accel("auto", kvm, _cpuinfo(tmp_path, "vmx"), guest="aarch64", host="x86_64")
    assert accel.name == "tcg"
    assert "host is x86_64" in accel.reason and "aarch64" in accel.reason


def test_an_arm_board_on_an_arm_host_with_kvm_uses_it(tmp_path: Path, kvm: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm\n")  # no vmx/svm on Arm
    assert pick_accel("auto", kvm, cpuinfo, guest="aarch64", host="aarch64").name == "kvm"
