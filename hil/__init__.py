"""hil: hardware-in-the-loop testing for embedded Linux OS releases."""

__version__ = "0.1.0"
