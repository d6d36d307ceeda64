"""Drivers: one small class per thing hil controls (QEMU, power relay, SD mux, serial, flasher, ...)."""
