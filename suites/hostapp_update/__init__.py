"""The hostapp_update suite (a package: installed, it runs as `pytest --pyargs hil.suites.hostapp_update`)."""
