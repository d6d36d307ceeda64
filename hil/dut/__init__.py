"""The device under test as tests hold it (`hil.dut.Dut`), the boards it stands on, how it is provisioned."""

from hil.dut.dut import Dut

__all__ = ["Dut"]
