"""End to end on a real QEMU board with an internal disk: the reference flasher installs the OS it carries
onto the internal disk and powers off, hil ejects it, and the boot suite passes on what it installed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from hil.images.builders.reference import FLASHER, build_reference
from hil.images.partitions import partition_uuids, partitions
from tests.support.e2e import ROOT, leftover_disks, qemu_pids, run_pytest

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

INTERNAL = 8 << 30  # as balena's Leviathan gives its QEMU workers

RIG = """kind: qemu
device_type: qemux86-64
os: reference
qemu:
  internal_disk: 8GiB
timeouts:
  boot: 180
  ssh: 90
  install: 240
"""

# Run after the boot suite, on the same DUT: where the installed OS runs from, and with what config.json.
INSTALLED = """
import base64, json
from hil.images.partitions import partitions

ROOTS = {roots!r}  # the carried image's root slots (PARTUUIDs)


def _out(dut, command):
    return dut.run(command).check().output.strip()


def test_the_installed_os_runs_from_the_internal_disk_alone_with_the_config_hil_gave(dut):
    disks = [name for name in _out(dut, "ls /sys/block").split() if name.startswith("vd")]
    assert disks == ["vda"], "the installer medium is still in"
    assert int(_out(dut, "cat /sys/block/vda/size")) * 512 == {internal}
    root = _out(dut, "awk '$5 == \\"/\\" {{print $3}}' /proc/self/mountinfo")
    lines = _out(dut, f"cat /sys/dev/block/{{root}}/uevent").splitlines()
    uevent = dict(line.split("=", 1) for line in lines)
    assert uevent["DEVNAME"].startswith("vda")
    head = base64.b64decode(_out(dut, "dd if=/dev/vda bs=512 count=34 2>/dev/null | base64"))
    on_disk = {{p.number: p.uuid for p in partitions(head)}}
    assert on_disk[int(uevent["PARTN"])] in ROOTS
    assert json.loads(_out(dut, "cat /mnt/boot/config.json")) == dut.config
    assert "balena-image-flasher" not in _out(dut, "ls /mnt/boot").split()
"""


def test_a_flasher_installs_onto_the_internal_disk_and_the_boot_suite_passes_on_what_it_installed(
    tmp_path: Path,
) -> None:
    healthy = build_reference("1.0.0", log=lambda line: None)
    flasher = build_reference("1.0.0", FLASHER, log=lambda line: None)
    roots = sorted(p.uuid for p in partitions(healthy.disk.read_bytes()[: 1 << 20])[1:3])
    assert roots and set(roots) <= partition_uuids(healthy.disk)
    rig = tmp_path / "qemu-internal.yaml"
    rig.write_text(RIG)
    check = tmp_path / "test_installed.py"
    check.write_text(INSTALLED.format(roots=roots, internal=INTERNAL))
    junit, art = tmp_path / "junit.xml", tmp_path / "art"
    out = run_pytest(
        tmp_path, "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), "suites/boot", str(check),
        "--rig", str(rig), "--image", str(flasher.disk), "--hil-artifacts", str(art), f"--junitxml={junit}",
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    suite = ET.parse(junit).getroot()
    cases = list(suite.iter("testcase"))
    assert len(cases) >= 10 and not [c for c in cases if c.find("failure") is not None]
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["hil.os_version"] == "1.0.0" and props["hil.image"].endswith(flasher.disk.name)
    serial = (art / "qemu-internal" / "serial.log").read_text(errors="replace")
    assert "hil-flasher: installed onto /dev/vda; powering off" in serial
    assert serial.count("hil-flasher: writing") == 1, "the installer ran again after its install"
    assert qemu_pids(tmp_path) == []
    assert leftover_disks(tmp_path) == []
