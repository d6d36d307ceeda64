"""The serial console on a pseudo-terminal: bytes both ways, and a USB adapter that drops and comes back."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.console.uart import SerialTransport
from hil.errors import ConsoleClosed


class FakeAdapter:
    """A USB serial adapter played by a pty: the DUT side is the master, the host sees `path` (a symlink)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.master = -1
        self.plug()

    def plug(self) -> None:
        """(Re)appear at the same path, as udev's by-id link does for a re-enumerated adapter."""
        master, slave = os.openpty()
        staged = self.path.with_name(self.path.name + ".new")
        staged.symlink_to(os.ttyname(slave))
        os.replace(staged, self.path)
        os.close(slave)
        self.master = master

    def unplug(self) -> None:
        """Vanish: the host's end hangs up and udev removes the by-id link."""
        self.path.unlink()
        os.close(self.master)
        self.master = -1

    def dut_says(self, data: bytes) -> None:
        os.write(self.master, data)

    def dut_hears(self, size: int, timeout: float = 10) -> bytes:
        got = b""
        deadline = time.monotonic() + timeout
        os.set_blocking(self.master, False)
        while len(got) < size and time.monotonic() < deadline:
            try:
                got += os.read(self.master, size - len(got))
            except BlockingIOError:
                time.sleep(0.01)
        return got


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[FakeAdapter]:
    adapter = FakeAdapter(tmp_path / "usb-FTDI_FT232R-if00-port0")
    yield adapter
    if adapter.master >= 0:
        os.close(adapter.master)


def read_until(console: SerialTransport, wanted: bytes, timeout: float = 10) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while wanted not in got and time.monotonic() < deadline:
        got += console.read(0.2)
    return got


def test_bytes_flow_both_ways(adapter: FakeAdapter) -> None:
    console = SerialTransport(str(adapter.path))
    adapter.dut_says(b"hil-dut login: ")
    assert read_until(console, b"login: ") == b"hil-dut login: "
    console.write(b"root\n")
    assert adapter.dut_hears(5) == b"root\n"
    console.close()


def test_read_returns_nothing_when_the_dut_is_silent(adapter: FakeAdapter) -> None:
    console = SerialTransport(str(adapter.path))
    assert console.read(0.1) == b""
    console.close()


def test_the_console_survives_the_adapter_dropping_and_returning(adapter: FakeAdapter) -> None:
    gaps: list[float] = []
    console = SerialTransport(str(adapter.path), reconnect_timeout=30, on_gap=gaps.append)
    adapter.dut_says(b"Booting kernel\n")
    assert read_until(console, b"kernel\n") == b"Booting kernel\n"
    adapter.unplug()
    threading.Timer(0.5, adapter.plug).start()
    assert console.read(0.2) == b""  # the drop is noticed, not raised
    deadline = time.monotonic() + 10
    while not gaps and time.monotonic() < deadline:
        console.read(0.2)
    adapter.dut_says(b"hil-dut login: ")
    assert read_until(console, b"login: ") == b"hil-dut login: "
    assert len(gaps) == 1 and gaps[0] > 0
    console.write(b"root\n")
    assert adapter.dut_hears(5) == b"root\n"
    console.close()


def test_a_write_during_a_drop_waits_for_the_adapter(adapter: FakeAdapter) -> None:
    console = SerialTransport(str(adapter.path), reconnect_timeout=30)
    adapter.unplug()
    console.read(0.2)
    threading.Timer(0.3, adapter.plug).start()
    console.write(b"reboot\n")
    assert adapter.dut_hears(7) == b"reboot\n"
    console.close()


def test_an_adapter_gone_past_the_reconnect_timeout_closes_the_console(adapter: FakeAdapter) -> None:
    console = SerialTransport(str(adapter.path), reconnect_timeout=0.5)
    adapter.unplug()
    with pytest.raises(ConsoleClosed, match=r"serial console .*usb-FTDI_FT232R-if00-port0 gone for 0\.\d s"):
        for _ in range(100):
            console.read(0.2)


def test_a_missing_port_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConsoleClosed, match=r"serial console .*ttyUSB9 cannot be opened"):
        SerialTransport(str(tmp_path / "ttyUSB9"))


def test_a_closed_console_refuses_reads(adapter: FakeAdapter) -> None:
    console = SerialTransport(str(adapter.path))
    console.close()
    with pytest.raises(ConsoleClosed, match="was closed"):
        console.read(0.1)


def test_a_console_on_a_dropped_adapter_keeps_one_transcript_with_the_gap_marked(
    adapter: FakeAdapter, tmp_path: Path
) -> None:
    from hil.console.engine import Console

    transport = SerialTransport(str(adapter.path), reconnect_timeout=10)
    console = Console(transport, tmp_path / "console.log", name="bench-1")
    transport.on_gap = lambda seconds: console.note(f"console line lost for {seconds:.1f} s; reconnected")
    adapter.dut_says(b"[    1.0] booting\r\n")
    console.expect("booting", timeout=10)
    adapter.unplug()
    time.sleep(0.5)
    adapter.plug()
    deadline = time.monotonic() + 10
    while "console line lost" not in (tmp_path / "console.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    adapter.dut_says(b"hil-dut login: ")
    console.expect(r"login: $", timeout=10)
    console.close()
    transcript = (tmp_path / "console.log").read_text()
    assert (
        transcript.index("booting") < transcript.index("console line lost for") < transcript.index("login:")
    )
