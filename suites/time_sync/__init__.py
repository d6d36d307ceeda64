"""The time_sync suite (a package: installed, it runs as `pytest --pyargs hil.suites.time_sync`)."""
