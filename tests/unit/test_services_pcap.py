"""DHCP messages read from a pcap capture: the kind and the hostname option (12) a client announced."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from hil.errors import HilError
from hil.probes.pcap import dhcp_messages

MAC = bytes.fromhex("525400123456")


def _dhcp_frame(kind: int, hostname: bytes | None) -> bytes:
    options = bytes([53, 1, kind]) + (bytes([12, len(hostname)]) + hostname if hostname else b"") + b"\0\xff"
    bootp = bytes([1, 1, 6, 0]) + bytes(24) + MAC + bytes(10 + 64 + 128) + b"\x63\x82\x53\x63" + options
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = bytes([0x45, 0]) + struct.pack("!H", 20 + len(udp)) + bytes(5) + bytes([17]) + bytes(10) + udp
    return b"\xff" * 6 + MAC + b"\x08\x00" + ip


def _pcap(path: Path, frames: list[bytes]) -> Path:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    records = b"".join(struct.pack("<IIII", 0, 0, len(f), len(f)) + f for f in frames)
    path.write_bytes(header + records)
    return path


def test_reads_the_kind_mac_and_hostname_of_each_dhcp_message(tmp_path: Path) -> None:
    arp = b"\xff" * 6 + MAC + b"\x08\x06" + bytes(28)
    pcap = _pcap(tmp_path / "c.pcap", [_dhcp_frame(1, b"hil-abc123"), arp, _dhcp_frame(3, b"hil-abc123")])
    messages = dhcp_messages(pcap)
    assert [m.kind for m in messages] == ["DISCOVER", "REQUEST"]
    assert {m.hostname for m in messages} == {"hil-abc123"}
    assert messages[0].client_mac == "52:54:00:12:34:56"


def test_a_client_that_sends_no_hostname_has_none(tmp_path: Path) -> None:
    assert dhcp_messages(_pcap(tmp_path / "c.pcap", [_dhcp_frame(3, None)]))[0].hostname is None


def test_a_file_that_is_not_pcap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.pcap").write_bytes(b"not a capture at all")
    with pytest.raises(HilError, match="not a pcap capture"):
        dhcp_messages(tmp_path / "x.pcap")
