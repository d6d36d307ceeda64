"""hil under pytest-xdist: one run id and artifacts root for all workers, and testsuite properties that
reach the merged JUnit file.

xdist workers have no JUnit writer, so `record_testsuite_property` is a silent no-op in them (pytest issue
7767): the hil.* properties the release gate needs would vanish from a `-n N` run. Workers hand them to
the controller instead, which writes them into the one JUnit file it produces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _pytest.junitxml import xml_key  # the controller's JUnit writer; pytest has no public handle on it

_PROPERTIES = "hil_suite_properties"
_RUN = "hil_run"


def worker_id(config: pytest.Config) -> str | None:
    """This session's xdist worker id (gw0, gw1, ...), or None outside xdist.

    From the worker's own configuration, not PYTEST_XDIST_WORKER: that variable is inherited by every
    process a worker starts, and a pytest started from inside a worker is a session of its own.
    """
    return getattr(config, "workerinput", {}).get("workerid")


def from_controller(config: pytest.Config) -> dict[str, str]:
    """What the controller handed this worker about the run (run id, start, artifacts); empty elsewhere."""
    return dict(getattr(config, "workerinput", {}).get(_RUN, {}))


def suite_property_recorder(config: pytest.Config) -> Callable[[str, object], None]:
    """record_testsuite_property that also works in an xdist worker."""
    xml = config.stash.get(xml_key, None)
    if xml is not None:
        return xml.add_global_property
    output = getattr(config, "workeroutput", None)
    if output is None:
        return lambda name, value: None  # no --junitxml: nothing to record, as in pytest
    recorded: list[list[str]] = output.setdefault(_PROPERTIES, [])

    def record(name: str, value: object) -> None:
        if [name, str(value)] not in recorded:
            recorded.append([name, str(value)])

    return record


class ControllerRelay:
    """The xdist controller's side: hands the run to each worker, and writes what workers recorded."""

    def __init__(self, config: pytest.Config, run: dict[str, str]) -> None:
        self.config = config
        self.run = run

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Give a starting worker the run's id, start time and artifacts root."""
        node.workerinput[_RUN] = self.run

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """Add a finished worker's properties to the JUnit file (each distinct name and value once)."""
        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        for name, value in getattr(node, "workeroutput", {}).get(_PROPERTIES, []):
            if (name, value) not in xml.global_properties:
                xml.add_global_property(name, value)
