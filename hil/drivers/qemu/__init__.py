"""The virtual board: QEMU as a process, its monitor (QMP), its disks, RTC and accelerator."""
