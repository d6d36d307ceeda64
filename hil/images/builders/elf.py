"""The shared libraries an ELF binary needs, read from the file: works for any architecture's binary.

`ldd` runs the binary's own loader, so it cannot answer for another architecture's binary; this reads
the DT_NEEDED entries of the dynamic section instead (64-bit little-endian ELF, as amd64 and arm64).
"""

from __future__ import annotations

import struct
from pathlib import Path

from hil.errors import ImageError

_SHT_DYNAMIC = 6
_DT_NEEDED = 1


def needed(path: Path) -> list[str]:
    """The DT_NEEDED library names of the ELF file at `path`, in order (empty for a static binary)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ImageError(f"{path} is not a 64-bit little-endian ELF file")
    shoff, shentsize, shnum = struct.unpack_from("<Q", data, 0x28)[0], *struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = []
    for _name, kind, _flags, _addr, offset, size, link, *_ in sections:
        if kind != _SHT_DYNAMIC:
            continue
        strtab = sections[link][4]
        for tag, value in struct.iter_unpack("<qQ", data[offset : offset + size]):
            if tag == _DT_NEEDED:
                names.append(data[strtab + value : data.index(b"\0", strtab + value)].decode())
    return names
