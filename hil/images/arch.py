"""Everything that differs per CPU architecture, for the reference image and the virtual board, in one place.

The image is the same on every architecture (layout, services, A/B update) and so is the board (UEFI
firmware booting the image's own GRUB); only what is listed here changes: Debian's name for the
architecture, the kernel's drivers, the serial console, the dynamic loader, GRUB's EFI target, the
name UEFI boots from removable media, and QEMU's package, firmware and boot options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hil.errors import ImageError

# Drivers the initramfs loads before it can mount a root on a QEMU board: disks, network and the FAT
# boot partition (which holds config.json).
_VIRTIO = (
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
)


@dataclass(frozen=True)
class Arch:
    """One architecture the reference image is built for."""

    name: str  # QEMU's and the rig's name (QemuSpec.arch)
    debian: str  # Debian's architecture name, for apt
    device_type: str  # the balena device-type slug of the virtual board
    console: str  # the kernel's serial console device
    modules: tuple[str, ...]  # kernel modules the initramfs loads, by name
    grub_target: str  # grub-mkstandalone -O
    efi_binary: str  # the removable-media boot path UEFI firmware looks for
    triplet: str  # Debian's multiarch library directory name
    interpreter: str  # the dynamic loader, where binaries look for it
    grub_serial: bool  # GRUB drives the UART itself (x86); on Arm the firmware's console is the UART
    qemu_package: str  # the Debian package with qemu-system-<name>
    firmware: tuple[Path, Path]  # UEFI code (read-only) and the variable store each board copies
    firmware_package: str
    boot_options: tuple[str, ...]  # QEMU options the firmware needs to boot without waiting

    @property
    def kernel_metapackage(self) -> str:
        """Debian's cloud kernel for this architecture: small, with virtio."""
        return f"linux-image-cloud-{self.debian}"


ARCHES = {
    "x86_64": Arch(
        name="x86_64",
        debian="amd64",
        device_type="qemux86-64",
        console="ttyS0",
        # The ACPI power button (button, evdev) gives QEMU's `system_powerdown` a clean power-down.
        modules=(*_VIRTIO, "button", "evdev"),
        grub_target="x86_64-efi",
        efi_binary="EFI/BOOT/BOOTX64.EFI",
        triplet="x86_64-linux-gnu",
        interpreter="lib64/ld-linux-x86-64.so.2",
        grub_serial=True,
        qemu_package="qemu-system-x86",
        firmware=(Path("/usr/share/OVMF/OVMF_CODE_4M.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.fd")),
        firmware_package="ovmf",
        boot_options=(),
    ),
    "aarch64": Arch(
        name="aarch64",
        debian="arm64",
        device_type="generic-aarch64",
        console="ttyAMA0",  # the virt machine's PL011 UART, built into the kernel
        modules=(*_VIRTIO, "button", "evdev"),
        grub_target="arm64-efi",
        efi_binary="EFI/BOOT/BOOTAA64.EFI",
        triplet="aarch64-linux-gnu",
        interpreter="lib/ld-linux-aarch64.so.1",
        grub_serial=False,
        qemu_package="qemu-system-arm",
        firmware=(Path("/usr/share/AAVMF/AAVMF_CODE.fd"), Path("/usr/share/AAVMF/AAVMF_VARS.fd")),
        firmware_package="qemu-efi-aarch64",
        # AAVMF waits 5 s at its boot menu unless told not to (a splash time of 0 skips the wait).
        boot_options=("-boot", "menu=on,splash-time=0"),
    ),
}


def get(name: str) -> Arch:
    """The architecture called `name`, or ImageError naming the ones there are."""
    try:
        return ARCHES[name]
    except KeyError:
        raise ImageError(
            f"no reference image for architecture {name!r}; choose one of {', '.join(ARCHES)}"
        ) from None


def for_device_type(device_type: str) -> Arch | None:
    """The architecture whose virtual board has this device type, if any."""
    return next((a for a in ARCHES.values() if a.device_type == device_type), None)


def of_device_type(device_type: str) -> str:
    """The architecture name of the reference image for `device_type`, or ImageError saying there is none."""
    arch = for_device_type(device_type)
    if arch is None:
        known = ", ".join(a.device_type for a in ARCHES.values())
        raise ImageError(
            f"hil builds no reference image for device type {device_type!r} (only {known}): use --image"
        )
    return arch.name
