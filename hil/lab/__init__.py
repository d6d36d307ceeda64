"""The lab: rig files, pools of rigs, leases on them, and the hardware a host can see."""
