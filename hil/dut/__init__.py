"""The device under test as tests hold it (`hil.dut.Dut`), the boards it stands on, how it is provisioned.

`Dut` is a facade over its parts: the state machine (`machine`), the console's login (`login`), the SSH
session (`ssh_session`) and the snapshot cache behind `Dut.fresh` (`snapshots`).
"""

from hil.dut.dut import Dut

__all__ = ["Dut"]
