"""hil's default SSH key for reference images: generated once into the cache, public half baked in."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hil.util.paths import cache_dir


def default_key(cache: Path | None = None) -> Path:
    """Path of the private key (OpenSSH format, `.pub` beside it), created on first use."""
    path = (cache or cache_dir()) / "ssh" / "id_ed25519"
    if path.exists() and path.with_suffix(".pub").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    write_key_pair(path, "hil-default")
    return path


def write_key_pair(path: Path, comment: str) -> str:
    """A new Ed25519 key pair: the private key at `path` (mode 600), the public line at `path`.pub and
    returned."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    # Write both halves under temporary names first, so a concurrent first use never sees half a key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(private)
    tmp.chmod(0o600)
    line = f"{public.decode()} {comment}"
    tmp_public = tmp.with_name(f"{tmp.name}.pub")
    tmp_public.write_text(line + "\n")
    os.replace(tmp_public, path.with_name(f"{path.name}.pub"))
    os.replace(tmp, path)
    return line


def default_public_key(cache: Path | None = None) -> str:
    """The default key's public line (`ssh-ed25519 AAAA... hil-default`)."""
    return default_key(cache).with_suffix(".pub").read_text().strip()
