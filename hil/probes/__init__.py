"""What the suites ask a DUT about its network and clock, through its OS profile's commands."""
