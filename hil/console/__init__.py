"""How hil talks to a DUT: the console engine over a byte transport (UART, QEMU socket), and SSH."""
