"""Root conftest: hil's plugin is registered by its pytest11 entry point once hil is installed
(scripts/setup does that); this makes a bare checkout on PYTHONPATH load it too. hil's own tests
use pytester to run suites the way a user's repository would."""

from importlib.metadata import PackageNotFoundError, distribution

pytest_plugins = ["pytester"]
try:
    distribution("hil")
except PackageNotFoundError:
    pytest_plugins.append("hil.pytestplugin.hooks")
