"""Root conftest: hil's plugin is registered by its pytest11 entry point once hil is installed
(scripts/setup does that); this makes a bare checkout on PYTHONPATH load it too."""

from importlib.metadata import PackageNotFoundError, distribution

try:
    distribution("hil")
except PackageNotFoundError:
    pytest_plugins = ["hil.pytest_plugin"]
