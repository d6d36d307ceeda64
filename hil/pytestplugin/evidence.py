"""Session-level evidence for the release gate: how the pytest session ended, as a JUnit testsuite property.

An interrupted session (SIGTERM, Ctrl-C, a crash) still writes its JUnit file with the tests it reached;
`hil.exitstatus` lets the gate tell it from a complete one. Loaded with hil's plugin.
"""

from __future__ import annotations

import pytest

from hil.pytestplugin.xdist import suite_property_recorder, worker_id


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Record pytest's exit status before the JUnit writer (a later sessionfinish hook) writes the file."""
    if worker_id(session.config) is None:  # under xdist the controller's status is the session's
        suite_property_recorder(session.config)("hil.exitstatus", int(exitstatus))
