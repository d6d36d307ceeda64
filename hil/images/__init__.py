"""The reference image: a small A/B Linux for QEMU boards, built from Debian packages without mounts."""
