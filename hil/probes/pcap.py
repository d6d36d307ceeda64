"""What a DHCP client told the network, read from a packet capture (QEMU's filter-dump writes pcap)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from hil.errors import HilError

_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}  # microsecond pcap, either byte order
_ETH_IPV4 = 0x0800
_UDP = 17
_DHCP_MAGIC = b"\x63\x82\x53\x63"
_KINDS = ("DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM")
DHCP_TYPES = dict(enumerate(_KINDS, 1))


@dataclass(frozen=True)
class DhcpMessage:
    """One DHCP message on the wire."""

    kind: str  # DISCOVER, REQUEST, ...
    client_mac: str
    options: dict[int, bytes]

    @property
    def hostname(self) -> str | None:
        """Option 12, the name the client announces."""
        value = self.options.get(12)
        return value.decode(errors="replace") if value is not None else None


def _frames(data: bytes) -> list[bytes]:
    order = _PCAP_MAGIC.get(data[:4])
    if order is None:
        raise HilError("not a pcap capture (unknown magic number)")
    frames, pos = [], 24
    while pos + 16 <= len(data):
        included = struct.unpack_from(f"{order}I", data, pos + 8)[0]
        frames.append(data[pos + 16 : pos + 16 + included])
        pos += 16 + included
    return frames


def _dhcp(frame: bytes) -> DhcpMessage | None:
    if len(frame) < 14 + 20 + 8 + 240 or struct.unpack_from("!H", frame, 12)[0] != _ETH_IPV4:
        return None
    ip = frame[14:]
    header = (ip[0] & 0x0F) * 4
    if ip[9] != _UDP:
        return None
    src, dst = struct.unpack_from("!HH", ip, header)
    if {src, dst} != {67, 68}:
        return None
    bootp = ip[header + 8 :]
    if bootp[236:240] != _DHCP_MAGIC:
        return None
    options: dict[int, bytes] = {}
    pos = 240
    while pos < len(bootp) and bootp[pos] != 255:
        if bootp[pos] == 0:  # padding
            pos += 1
            continue
        code, length = bootp[pos], bootp[pos + 1]
        options[code] = bootp[pos + 2 : pos + 2 + length]
        pos += 2 + length
    kind = DHCP_TYPES.get(options.get(53, b"\0")[0], "UNKNOWN")
    return DhcpMessage(kind, ":".join(f"{b:02x}" for b in bootp[28:34]), options)


def dhcp_messages(pcap: Path) -> list[DhcpMessage]:
    """Every DHCP message in a pcap file, in capture order."""
    return [m for m in map(_dhcp, _frames(pcap.read_bytes())) if m is not None]
