"""The networking suite (a package: installed, it runs as `pytest --pyargs hil.suites.networking`)."""
