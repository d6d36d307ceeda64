"""The virtual board: flash is a qcow2 overlay, power is the QEMU process, the console a serial socket.

A reset (the guest rebooting, a kernel panic, the reset button) starts a fresh QEMU process on the same
disk, firmware variables and RTC, and the console follows it. Under TCG a warm reset left the next boot
several times slower in its bootloader and early kernel: GRUB took 4.0 s to load the kernel and initrd
after a warm reset against 0.4 s from a cold start (the reference image, measured here), which on an
update suite's twenty reboots is over a minute. A rig that emulates a physical console line (serial
"pty": a new process would change the tty under it) keeps QEMU's warm reset.

The processes' life cycle (power on and off, restarts, deaths, an expected guest power-off) is one
state machine, `process.Lifecycle`; this module says how a process is made and what its events mean.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from hil.console.unix_socket import UnixSocketTransport
from hil.drivers.capabilities import (
    BootCounter,
    BootSnapshots,
    HostedNetwork,
    LinkControl,
    NetworkCapture,
    RtcControl,
)
from hil.drivers.config_json import ConfigPlace
from hil.drivers.qemu.accel import Accel, pick_accel
from hil.drivers.qemu.disks import DiskSet, DiskSets
from hil.drivers.qemu.flash import prepare
from hil.drivers.qemu.machine import Machine
from hil.drivers.qemu.process import Lifecycle, State, spawn
from hil.drivers.qemu.qmp import EventHandler, QmpLink
from hil.drivers.qemu.rtc import RtcClock
from hil.errors import HilError, QemuError, ToolMissing
from hil.images.arch import ARCHES
from hil.images.edit import partitions_of
from hil.util.hostproc import free_port, tool

log = logging.getLogger("hil.qemu")

SLIRP_HOST = "10.0.2.2"  # where QEMU user networking puts the host, as the guest sees it
SNAPSHOT = "hil-booted"  # the name of the one snapshot a disk set holds
# A reset pauses the machine instead of resetting it in place (hil then starts a new process), and so
# does a guest power-off (hil then ends the process, as QEMU would have).
RESET_AS_RESTART = ("-action", "reboot=shutdown,shutdown=pause")
EVENTS = ("SHUTDOWN", "RTC_CHANGE")
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")  # colours, cursor moves


def _runs(proc: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """Whether `proc` still runs, asked while its monitor does not answer yet."""
    return lambda: proc.poll() is None


def preflight(spec: Machine) -> None:
    """Fail before anything starts when a host program or the firmware a virtual board needs is missing."""
    arch = ARCHES[spec.arch]
    tool(f"qemu-system-{spec.arch}", arch.qemu_package)
    tool("qemu-img", "qemu-utils")
    for firmware in arch.firmware:
        if not firmware.exists():
            raise ToolMissing(
                f"UEFI firmware {firmware} is missing (apt-get install {arch.firmware_package})"
            )


class QemuBoard:
    """One QEMU virtual board; `workdir` holds its temporary disks, `artifacts` its logs."""

    provides = (LinkControl, NetworkCapture, RtcControl, HostedNetwork, BootSnapshots, BootCounter)

    def __init__(
        self, name: str, spec: Machine, workdir: Path, artifacts: Path, ssh_guest_port: int,
        *, serial: Literal["socket", "pty"] = "socket", config_place: ConfigPlace | None = None,
        install_timeout: float = 600.0,
    ) -> None:  # fmt: skip
        self.name = name
        self.spec = spec
        self.config_place = config_place  # where config.json goes on the disk; None: the OS reads none
        self.install_timeout = install_timeout  # a flasher image: power-on to its power-off, installed
        self.workdir = workdir
        self.artifacts = artifacts
        self.ssh_guest_port = ssh_guest_port
        self.ssh_host = "127.0.0.1"
        self.ssh_port = 0
        self.arch = ARCHES[spec.arch]
        self.accel: Accel = pick_accel(spec.accel, guest=spec.arch)
        self.qemu_version = ""
        self.serial = serial
        self.pty_path: Path | None = None
        self._disks = DiskSets(workdir, self.arch.firmware[1])
        self._loadvm: str | None = None  # the snapshot the next process starts from
        self._life = Lifecycle(name, self._start, self._describe_exit, restarts=self.restarts_on_reset)
        self._rtc: RtcClock | None = None  # the RTC of the latest process
        self._rtc_carried: str | None = None  # the RTC a restarted process continues from
        # Where the board's clock starts (QEMU -rtc base=): set after a flash, it holds until the next
        # one and overrides the rig's qemu.rtc_base (e.g. a DUT whose RTC is years in the past).
        self.rtc_base: str | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        artifacts.mkdir(parents=True, exist_ok=True)

    @property
    def stderr_log(self) -> Path:
        """QEMU's own stderr, kept as an artifact."""
        return self.artifacts / "qemu.stderr.log"

    @property
    def serial_log(self) -> Path:
        """Everything the guest printed on its serial port, captured by QEMU itself."""
        return self.artifacts / "serial.log"

    @property
    def console_socket(self) -> Path:
        """The Unix socket of the board's serial console."""
        return self.workdir / "console.sock"

    @property
    def pid(self) -> int | None:
        """The QEMU process's id while it runs."""
        proc = self._life.process
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def is_on(self) -> bool:
        """True while the board is powered: its QEMU process runs, starts or restarts."""
        return self._life.is_on

    @property
    def state(self) -> State:
        """Where the board's QEMU process is in its life (see process.py)."""
        return self._life.state

    def boots_started(self) -> int:
        """Boots the board has started: each process that ran the guest, a power-on's or a reset's. (A
        board that keeps QEMU's warm reset, the twin's, counts only power-ons; the twin offers no count.)"""
        return self._life.generation

    def flash(self, image: Path, config: dict[str, Any]) -> None:
        """Put `image` on the board's disk (a fresh qcow2 overlay) and configure it with `config`; a
        flasher image boots from a second disk until it has installed the OS onto the internal one."""
        if self.is_on:
            raise QemuError(f"board {self.name} is powered; power it off before flashing")
        place, internal_disk = self.config_place, self.spec.internal_disk
        disk_set = prepare(self._disks, self.name, image, config, place, internal_disk)
        self.rtc_base = None
        self._disks.attach(disk_set)
        if disk_set.installer is not None:
            self._install(image)
        log.info("%s: flashed %s (disk %s)", self.name, image, disk_set.disk)

    def _install(self, image: Path) -> None:
        """Boot the installer medium until the guest powers off, then eject it: from then on the board
        boots what the installer wrote onto its internal disk. A flasher that does not power off within
        the bound, crashes, or writes nothing leaves no QEMU and no disk behind."""
        disks = self._disks.current
        assert disks is not None and disks.disk is not None  # flash() attached the installer's set
        started = time.monotonic()
        deadline = started + self.install_timeout
        try:
            self.expect_power_off()
            self.power_on(deadline)
            problem = self._await_power_off(deadline - time.monotonic(), bound=self.install_timeout)
            if problem is None and not partitions_of(disks.disk):
                problem = f"powered off with no partition table on the internal disk{self._console_said()}"
        except HilError as exc:
            problem = f"could not run: {exc}"
        except BaseException:
            self._abandon_install()
            raise
        if problem is not None:
            self._abandon_install()
            raise QemuError(f"flasher image {image.name} did not install on board {self.name}: it {problem}")
        self._disks.eject()
        log.info("%s: %s installed the OS onto the internal disk in %.1f s; installer ejected",
                 self.name, image.name, time.monotonic() - started)  # fmt: skip

    def _abandon_install(self) -> None:
        """End an install that failed: no QEMU, and no disk set (the board has no image until a flash)."""
        try:
            self.power_off(grace=2)
        finally:
            self._disks.discard()

    def attach_disk(self, disk: Path | None, fmt: str = "raw") -> None:
        """Boot from `disk` (None: no disk) with fresh firmware settings."""
        if self.is_on:
            raise QemuError(f"board {self.name} is powered; its disk cannot change under it")
        self._disks.attach(DiskSet(self._disks.new_root(), disk, fmt))

    def save_snapshot(self, key: str) -> None:
        """Save the running machine (memory, devices, disk) as `key`, to start from it again later."""
        out = self.qmp("human-monitor-command", {"command-line": f"savevm {SNAPSHOT}"}, timeout=120)
        if out.strip():  # HMP answers an empty string on success, the reason otherwise
            raise QemuError(f"QEMU could not save a snapshot of {self.name}: {out.strip()}")
        self._disks.remember(key)
        log.info("%s: saved snapshot %s", self.name, key[:12])

    def has_snapshot(self, key: str) -> bool:
        """Whether the board keeps a snapshot saved as `key`."""
        return self._disks.recall(key) is not None

    def restore_snapshot(self, key: str, deadline: float) -> None:
        """Power off, then start a new process from the snapshot `key`: the machine as it was saved."""
        disk_set = self._disks.recall(key)
        if disk_set is None:
            raise QemuError(f"board {self.name} keeps no snapshot {key[:12]}")
        self.power_off()
        self._disks.attach(disk_set)
        self.rtc_base = None
        self._loadvm = SNAPSHOT
        try:
            self.power_on(deadline)
        finally:
            self._loadvm = None

    def _command(self) -> list[str]:
        spec, disks = self.spec, self._disks.current
        assert disks is not None  # power_on checks
        return [
            tool(f"qemu-system-{spec.arch}", self.arch.qemu_package),
            "-name", f"hil-{self.name}", "-nodefaults", "-no-user-config", "-display", "none",
            "-machine", f"{spec.machine},accel={self.accel.name}", "-m", str(spec.memory),
            *(["-cpu", spec.cpu] if spec.cpu else []), *self.arch.boot_options,
            "-smp", str(spec.cpus), "-S",
            "-qmp", f"unix:{self.workdir / 'qmp.sock'},server=on,wait=off",
            "-chardev", f"{self._serial_backend()},id=serial0,logfile={self.serial_log},logappend=on",
            "-serial", "chardev:serial0",
            "-drive", f"if=pflash,format=raw,readonly=on,file={self.arch.firmware[0]}",
            "-drive", f"if=pflash,format=qcow2,file={disks.vars}",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:{self.ssh_guest_port}",
            "-device", "virtio-net-pci,netdev=net0,id=nic0",
            *self._drives(disks),
            "-rtc", f"base={self._rtc_start()}",
            *(RESET_AS_RESTART if self.restarts_on_reset else ()),
            *(["-loadvm", self._loadvm] if self._loadvm else []),
        ]  # fmt: skip

    @staticmethod
    def _drives(disks: DiskSet) -> list[str]:
        """The disk, as the PCI device after the NIC (slot 2, as QEMU places an if=virtio drive)."""
        if disks.disk is None:
            return []
        if not disks.internal:
            return ["-drive", f"if=virtio,format={disks.fmt},file={disks.disk}"]
        # An internal disk keeps its slot, and a boot index: the firmware boots it even where an installer
        # left boot options naming the medium it booted from. That medium, while it is in, is a second
        # virtio disk (the cloud kernels have no USB storage), first in the boot order.
        internal = [
            "-drive", f"if=none,id=internal,format={disks.fmt},detect-zeroes=on,file={disks.disk}",
            "-device", "virtio-blk-pci,drive=internal,bootindex=1",
        ]  # fmt: skip
        if disks.installer is None:
            return internal
        return [
            *internal,
            "-drive", f"if=none,id=installer,format=qcow2,file={disks.installer}",
            "-device", "virtio-blk-pci,drive=installer,bootindex=0",
        ]  # fmt: skip

    @property
    def restarts_on_reset(self) -> bool:
        """Whether a reset starts a new QEMU process (see the module docstring)."""
        return self.serial == "socket"

    def _rtc_start(self) -> str:
        return self._rtc_carried or self.rtc_base or self.spec.rtc_base or "utc"

    def _serial_backend(self) -> str:
        if self.serial == "pty":
            return "pty"  # a tty path, as a USB serial adapter would give (read back from QMP)
        return f"socket,path={self.console_socket},server=on,wait=off"

    def power_on(self, deadline: float) -> None:
        """Start QEMU paused, connect QMP, then let the CPU run (a fresh port if the forward collides)."""
        if self._disks.current is None:
            raise QemuError(f"board {self.name} has no image; flash it first")
        self._life.power_on(deadline)

    def _start(self, deadline: float, reset: str | None) -> tuple[subprocess.Popen[bytes], QmpLink]:
        """A new QEMU process, its CPU running; after a `reset` it carries on the RTC the guest left."""
        if reset is None:
            self._rtc_carried = None
        else:
            assert self._rtc is not None  # set by the process the reset ended
            self._rtc_carried = self._rtc.base_now()
        return self._launch(deadline)

    def _launch(self, deadline: float) -> tuple[subprocess.Popen[bytes], QmpLink]:
        """Start a QEMU process and its QMP link, then let the CPU run."""
        for _attempt in range(3):
            self.ssh_port = free_port()
            proc, rtc = self._start_process()
            qmp = QmpLink(self.workdir / "qmp.sock", self.name, EVENTS, self._events_of(proc, rtc))
            try:
                self.qemu_version = qmp.connect(min(deadline, time.monotonic() + 30), _runs(proc))
                break
            except QemuError as exc:
                self._discard(proc, qmp)
                tail = self._stderr_tail()
                if "host forwarding" not in tail:
                    raise QemuError(f"QEMU did not start: {tail or exc} (log: {self.stderr_log})") from None
            except BaseException:
                self._discard(proc, qmp)
                raise
        else:
            raise QemuError(f"no free host port for SSH forwarding after 3 tries: {self._stderr_tail()}")
        log.info(
            "%s: QEMU %s (%s; %s), ssh on 127.0.0.1:%d",
            self.name,
            self.qemu_version,
            self.accel.name,
            self.accel.reason,
            self.ssh_port,
        )
        try:
            if self.serial == "pty":
                chardevs = {c["label"]: c["filename"] for c in qmp.execute("query-chardev")}
                self.pty_path = Path(chardevs["serial0"].removeprefix("pty:"))
            qmp.execute("cont")
        except BaseException:
            self._discard(proc, qmp)
            raise
        return proc, qmp

    def _start_process(self) -> tuple[subprocess.Popen[bytes], RtcClock]:
        for stale in ("qmp.sock", "console.sock"):
            (self.workdir / stale).unlink(missing_ok=True)
        command = self._command()
        self._rtc = RtcClock(self._rtc_start())
        log.debug("%s: %s", self.name, " ".join(command))
        return spawn(command, self.stderr_log), self._rtc

    @staticmethod
    def _discard(proc: subprocess.Popen[bytes], qmp: QmpLink) -> None:
        """A process that did not start: close its link, kill it."""
        qmp.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def _events_of(self, proc: subprocess.Popen[bytes], rtc: RtcClock) -> EventHandler:
        """What to do with `proc`'s QMP events, on its link's thread: never block there."""

        def on_event(name: str, data: dict[str, Any]) -> None:
            if name == "RTC_CHANGE":
                rtc.changed(float(data.get("offset", 0)))
            elif name == "SHUTDOWN":
                self._life.shutdown(proc, str(data.get("reason", "")))

        return on_event

    def _stderr_tail(self, lines: int = 3) -> str:
        try:
            text = self.stderr_log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line for line in text[-lines:] if not line.startswith("--- "))

    def _serial_tail(self, lines: int = 3) -> str:
        """The last lines the guest printed, escapes stripped (read from the end of a log that only grows)."""
        try:
            with self.serial_log.open("rb") as f:
                f.seek(max(0, f.seek(0, 2) - 4096))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        kept = [_ESCAPES.sub("", line).strip() for line in text.splitlines()]
        return " | ".join([line for line in kept if line][-lines:])

    def exit_reason(self) -> str | None:
        """Why QEMU died, in one line (None while it runs or when hil stopped it)."""
        return self._life.exit_reason()

    def _describe_exit(self, status: int) -> str:
        tail = self._stderr_tail()
        if "KVM internal error" in tail or "emulation failure" in tail:
            return (
                f"QEMU died under KVM (emulation failure): this host's KVM cannot run the guest; "
                f"use accel: tcg (see {self.stderr_log})"
            )
        how = f"killed by signal {-status}" if status < 0 else f"exit status {status}"
        return f"QEMU exited unexpectedly ({how}){': ' + tail if tail else ''} (log: {self.stderr_log})"

    def console_transport(self, timeout: float) -> UnixSocketTransport:
        """A connection to the board's serial console; it follows the board across restarts."""
        seen = self._life.generation

        def follow() -> bool:
            nonlocal seen
            now = self._life.follow(seen)
            if now is None:
                return False
            seen = now
            return True

        return UnixSocketTransport(
            self.console_socket, connect_timeout=timeout, closed_reason=self.exit_reason,
            follow=follow if self.restarts_on_reset else None,
        )  # fmt: skip

    def qmp(self, command: str, arguments: dict[str, Any] | None = None, timeout: float = 10) -> Any:
        """Run a QMP command on the running board (after a restart in progress)."""
        monitor = self._life.monitor()
        if monitor is None:
            raise QemuError(self.exit_reason() or f"board {self.name} is powered off")
        return monitor.execute(command, arguments, timeout)

    def reset(self) -> None:
        """Press the reset button (a warm reset of the whole machine)."""
        self.qmp("system_reset")

    def set_rtc_base(self, base: str) -> None:
        """Start the board's clock at `base` from the next power-on until the next flash."""
        if self.is_on:
            raise QemuError(f"board {self.name} is powered; its RTC base applies from the next power-on")
        self.rtc_base = base

    def host_address(self) -> str:
        """The address at which the guest reaches this host (QEMU user networking)."""
        return SLIRP_HOST

    def set_link(self, up: bool) -> None:
        """Plug or unplug the board's network cable."""
        self.qmp("set_link", {"name": "nic0", "up": up})

    @contextlib.contextmanager
    def capture_network(self, pcap: Path) -> Iterator[Path]:
        """Record the board's network traffic into a pcap file while inside (QEMU's filter-dump)."""
        self.qmp("object-add", {"qom-type": "filter-dump", "id": "hil-capture", "netdev": "net0",
                                "file": str(pcap)})  # fmt: skip
        try:
            yield pcap
        finally:
            with contextlib.suppress(QemuError):
                self.qmp("object-del", {"id": "hil-capture"})  # closes the file

    def power_off(self, grace: float = 10.0) -> None:
        """Cut power: QMP quit, then SIGKILL if QEMU is still there after `grace` seconds."""
        self._life.power_off(grace)

    def expect_power_off(self) -> None:
        """Take the guest's next power-off as the outcome, not as the DUT dying (a flasher image ends so)."""
        self._life.expect_power_off()

    def wait_powered_off(self, timeout: float) -> None:
        """Wait up to `timeout` s for the power-off expect_power_off() announced; the board is then off,
        ready to be powered on again (with another disk, say)."""
        if self.is_on and not self._life.power_off_expected:
            raise QemuError(f"board {self.name} expects no power-off; call expect_power_off() first")
        problem = self._await_power_off(timeout)
        if problem is not None:
            raise QemuError(f"board {self.name} {problem}")

    def _await_power_off(self, timeout: float, bound: float | None = None) -> str | None:
        """Wait up to `timeout` s for an announced power-off (of `bound` s in all): None once the board is
        off, else what happened instead."""
        state = self._life.wait_off(max(0.0, timeout))
        if state is State.OFF:
            return None
        if state is State.DEAD:
            return f"did not power off as expected: {self._life.reason}{self._console_said()}"
        return f"did not power itself off within {bound or timeout:g} s{self._console_said()}"

    def _console_said(self) -> str:
        tail = self._serial_tail()
        return f"{'; its console last printed: ' + tail if tail else ''} (console log: {self.serial_log})"

    def close(self) -> None:
        """Power off and delete the board's temporary disks; logs stay in artifacts."""
        self._life.close(grace=2)
        shutil.rmtree(self.workdir, ignore_errors=True)
