"""Rig pools: the first free healthy rig is leased, instances of a virtual rig are leased one by one,
a full pool waits then names every holder, and pool files are checked like rig files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hil.errors import LeaseError, RigConfigError
from hil.lab.lab_store import LabStore
from hil.lab.pool import health, lease_count, lease_names, lease_rig, load_pool, pools, record_health, rig_for
from hil.lab.rig import load_rig
from hil.lab.suites import auto_boards
from tests.unit.test_lab_store import eventually

HOLD = """
import sys, time
from hil.lab.locking import Lease
for name in sys.argv[1:]:
    Lease(name).acquire()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private rig directory and cache (leases, health) for one test."""
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    monkeypatch.setenv("HIL_RIGS_DIR", str(rigs))
    monkeypatch.setenv("HIL_CACHE_DIR", str(tmp_path / "cache"))
    return rigs


def _rig(rigs: Path, name: str, extra: str = "", device_type: str = "qemux86-64", instances: int = 1) -> None:
    """A rig file; one board (instances: 1) unless asked, like a physical bench."""
    text = f"kind: qemu\ndevice_type: {device_type}\ninstances: {instances}\n{extra}"
    (rigs / f"{name}.yaml").write_text(text)


@pytest.fixture
def holder_of(lab: Path):
    """Start a separate process that holds the given leases until the test ends."""
    children: list[subprocess.Popen[str]] = []

    def hold(*names: str) -> subprocess.Popen[str]:
        child = subprocess.Popen([sys.executable, "-c", HOLD, *names], stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        return child

    yield hold
    for child in children:
        child.kill()
        child.wait(timeout=10)


def test_a_pool_gathers_rigs_from_pools_yaml_and_from_rig_files(lab: Path) -> None:
    _rig(lab, "bench-1")
    _rig(lab, "bench-2", "pool: bench\n")
    (lab / "pools.yaml").write_text("bench:\n  description: two benches\n  rigs: [bench-1]\n")
    pool = load_pool("bench")
    assert [r.name for r in pool.rigs] == ["bench-1", "bench-2"]
    assert (pool.device_type, pool.description) == ("qemux86-64", "two benches")


def test_the_shipped_pool_holds_the_shipped_qemu_rig() -> None:
    assert [r.name for r in pools()["qemux86-64"].rigs] == ["qemu-x86_64"]


def test_a_virtual_rig_runs_four_boards_at_once_unless_its_file_says_otherwise(lab: Path) -> None:
    (lab / "vm.yaml").write_text("kind: qemu\ndevice_type: qemux86-64\n")
    assert lease_names(load_rig("vm")) == ["vm#0", "vm#1", "vm#2", "vm#3"]


def test_hil_run_picks_no_more_boards_than_the_rig_argument_can_lease(lab: Path) -> None:
    (lab / "vm.yaml").write_text("kind: qemu\ndevice_type: qemux86-64\npool: vms\n")
    _rig(lab, "bench-1", "pool: vms\n")
    assert [lease_count(arg) for arg in ("vm", "vm#2", "bench-1", "pool:vms")] == [4, 1, 1, 5]
    vm, cores = load_rig("vm"), len(os.sched_getaffinity(0))
    assert auto_boards(vm, lease_count("vm#2"), units=5) == 1
    assert auto_boards(vm, lease_count("vm"), units=5) == min(cores, 4)
    assert auto_boards(vm, lease_count("vm"), units=1) == 1


def test_a_pool_that_names_an_unknown_rig_names_file_line_and_field(lab: Path) -> None:
    _rig(lab, "bench-1")
    (lab / "pools.yaml").write_text("bench:\n  rigs:\n    - bench-1\n    - bench-9\n")
    with pytest.raises(RigConfigError) as info:
        pools()
    assert str(info.value) == f"{lab / 'pools.yaml'}:4: bench.rigs.1: unknown rig 'bench-9'"


def test_a_misspelt_pool_field_names_file_line_and_field(lab: Path) -> None:
    (lab / "pools.yaml").write_text("bench:\n  rig: [bench-1]\n")
    with pytest.raises(RigConfigError, match=r"pools.yaml:2: bench.rig: unknown field"):
        pools()


def test_a_pool_of_two_device_types_is_refused(lab: Path) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    _rig(lab, "pi-1", "pool: bench\n", device_type="raspberrypi4-64")
    with pytest.raises(RigConfigError, match=r"pool bench mixes device types: bench-1 \(qemux86-64\), pi-1"):
        pools()


def test_an_unknown_pool_lists_the_known_ones(lab: Path) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    with pytest.raises(RigConfigError, match=r"unknown pool 'bnech'; known pools: .*bench"):
        lease_rig("pool:bnech")


def test_the_pool_leases_the_first_free_rig(lab: Path, holder_of) -> None:
    for name in ("bench-1", "bench-2", "bench-3"):
        _rig(lab, name, "pool: bench\n")
    holder_of("bench-1")
    rig, lease = lease_rig("pool:bench")
    with lease:
        assert (rig.name, lease.rig_name) == ("bench-2", "bench-2")
        rig, second = lease_rig("pool:bench")
        with second:
            assert rig.name == "bench-3"


def test_a_virtual_rig_with_instances_is_leased_once_per_instance(lab: Path, holder_of) -> None:
    _rig(lab, "vm", instances=3)
    assert lease_names(load_rig("vm")) == ["vm#0", "vm#1", "vm#2"]
    holder_of("vm#0")
    rig, lease = lease_rig("vm")
    with lease:
        assert (rig.name, lease.rig_name) == ("vm", "vm#1")


def test_one_instance_can_be_named(lab: Path, holder_of) -> None:
    _rig(lab, "vm", instances=2)
    rig, lease = lease_rig("vm#1")
    with lease:
        assert (rig.name, lease.rig_name) == ("vm", "vm#1")
    assert rig_for("vm#0").name == "vm"
    with pytest.raises(RigConfigError, match=r"rig vm has no instance 2; it has vm#0, vm#1"):
        lease_rig("vm#2")


def test_a_full_pool_waits_then_names_every_holder(lab: Path, holder_of) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    _rig(lab, "bench-2", "pool: bench\n")
    child = holder_of("bench-1", "bench-2")
    with pytest.raises(LeaseError) as info:
        lease_rig("pool:bench", wait=1.0)
    who = f"{socket.gethostname()}:{child.pid} since "
    assert str(info.value).startswith(
        f"pool:bench: no free rig after waiting 1 s: bench-1 is leased by {who}"
    )
    assert f"; bench-2 is leased by {who}" in str(info.value)


def test_a_rig_freed_while_waiting_is_taken(lab: Path, holder_of) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    child = holder_of("bench-1")
    freer = subprocess.Popen(["sh", "-c", f"sleep 1; kill {child.pid}"])
    rig, lease = lease_rig("pool:bench", wait=60)
    with lease:
        assert rig.name == "bench-1"
    freer.wait(timeout=10)


def test_health_is_recorded_as_json_beside_the_leases(lab: Path) -> None:
    assert health("bench-1") is None
    record_health("bench-1", False, "no login within 180 s")
    data = json.loads((lab.parent / "cache" / "health" / "bench-1.json").read_text())
    assert (data["healthy"], data["reason"]) == (False, "no login within 180 s")
    found = health("bench-1")
    assert found is not None and not found.healthy and found.reason == "no login within 180 s"


def test_the_pool_skips_an_unhealthy_rig_until_it_passes_a_check(lab: Path) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    _rig(lab, "bench-2", "pool: bench\n")
    record_health("bench-1", False, "SD mux stuck")
    rig, lease = lease_rig("pool:bench")
    lease.release()
    assert rig.name == "bench-2"
    record_health("bench-1", True)
    rig, lease = lease_rig("pool:bench")
    lease.release()
    assert rig.name == "bench-1"


def test_a_pool_with_no_healthy_rig_fails_at_once_with_the_reasons(lab: Path) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    record_health("bench-1", False, "serial silent")
    with pytest.raises(
        LeaseError, match=r"pool:bench: no healthy rig; unhealthy: bench-1 \(serial silent, checked 20"
    ):
        lease_rig("pool:bench", wait=600)


def test_a_rig_named_directly_that_failed_its_check_is_refused_naming_the_check(lab: Path) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    checked = record_health("bench-1", False, "serial: the serial line stayed silent")
    with pytest.raises(LeaseError) as info:
        lease_rig("bench-1")
    assert str(info.value).startswith(
        "rig bench-1 failed its last check (serial: the serial line stayed silent, checked "
        f"{checked.checked.isoformat(timespec='seconds')}); `hil rig check bench-1` re-checks it, --force"
    )
    with pytest.raises(LeaseError, match="failed its last check"):
        lease_rig(str(lab / "bench-1.yaml"))


def test_an_instance_of_an_unhealthy_virtual_rig_is_refused_too(lab: Path) -> None:
    _rig(lab, "vm", instances=2)
    record_health("vm", False, "boot: no login within 180 s")
    with pytest.raises(LeaseError, match=r"rig vm failed its last check \(boot: no login within 180 s, "):
        lease_rig("vm#1")


def test_a_forced_unhealthy_rig_is_leased(lab: Path) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    record_health("bench-1", False, "serial silent")
    rig, lease = lease_rig("bench-1", force=True)
    lease.release()
    assert rig.name == "bench-1"


def test_a_rig_that_passed_its_check_again_is_leased_without_force(lab: Path) -> None:
    _rig(lab, "bench-1")
    record_health("bench-1", False, "serial silent")
    record_health("bench-1", True)
    rig, lease = lease_rig("bench-1")
    lease.release()
    assert rig.name == "bench-1"


def test_an_unreadable_health_record_keeps_the_rig_out(lab: Path) -> None:
    folder = lab.parent / "cache" / "health"
    folder.mkdir(parents=True)
    (folder / "bench-1.json").write_text("{half")
    found = health("bench-1")
    assert found is not None and not found.healthy and "unreadable" in found.reason


def test_leases_of_a_pool_die_with_their_holder(lab: Path, holder_of) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    child = holder_of("bench-1")
    os.kill(child.pid, 9)
    child.wait(timeout=10)
    rig, lease = lease_rig("pool:bench")
    lease.release()
    assert rig.name == "bench-1"


def test_a_bad_rig_file_is_skipped_with_a_warning_and_other_pools_keep_working(
    lab: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    (lab / "broken.yaml").write_text("kind: qemu\ndevice_type: qemux86-64\nqemu:\n  memroy: 5\n")
    (lab / "binary.yaml").write_bytes(b"\x7fELF\x02\x01\x01\x00")
    rig, lease = lease_rig("pool:bench")
    lease.release()
    assert rig.name == "bench-1"
    assert [r.name for r in pools()["bench"].rigs] == ["bench-1"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"skipping rig broken: {lab / 'broken.yaml'}:4: qemu.memroy: unknown field" in warnings
    assert any(
        w.startswith(f"skipping rig binary: {lab / 'binary.yaml'}:1: not valid YAML") for w in warnings
    )


def test_a_pool_that_lists_a_bad_rig_names_the_rigs_mistake(lab: Path) -> None:
    _rig(lab, "bench-1", "pool: other\n")
    _rig(lab, "bench-2", "qemu:\n  memroy: 5\n")
    (lab / "pools.yaml").write_text("bench:\n  rigs: [bench-2]\n")
    with pytest.raises(RigConfigError) as info:
        lease_rig("pool:bench")
    assert str(info.value) == (
        f"{lab / 'bench-2.yaml'}:5: qemu.memroy: unknown field; pool bench cannot be used until it is fixed"
    )
    assert "bench" not in pools() and "other" in pools()


def test_a_bad_rig_file_that_joins_a_pool_stops_that_pool(lab: Path) -> None:
    _rig(lab, "bench-1", "pool: bench\n")
    _rig(lab, "bench-2", "pool: bench\n", instances=0)
    with pytest.raises(
        RigConfigError, match=r"bench-2\.yaml:3: instances: .*; pool bench cannot be used until"
    ):
        load_pool("bench")


def test_a_leased_rig_is_mirrored_into_the_store_while_it_is_held(
    lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store.sqlite"
    monkeypatch.setenv("HIL_STORE", str(store))
    _rig(lab, "vm", instances=2)
    _, lease = lease_rig("vm")
    with lease:
        rows = eventually(lambda: LabStore(store).leases(), "mirrored lease")
        assert [(r.rig, r.host, r.pid) for r in rows] == [("vm#0", socket.gethostname(), os.getpid())]  # type: ignore[attr-defined]
    eventually(lambda: not LabStore(store).leases(), "row removed on release")
