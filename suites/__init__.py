"""hil's gating suites. Packages, so that an installed hil (which ships them as `hil.suites`) runs them by
module name: `pytest --pyargs hil.suites`, or one suite as `pytest --pyargs hil.suites.boot`."""
