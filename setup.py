"""Build glue pyproject.toml cannot express: the wheel carries hil's defaults inside the package.

The checkout keeps `suites/`, `rigs/` and `gate.yaml` at the top; the wheel puts them under `hil/`
(hil/suites, hil/rigs, hil/gate.yaml), so an installed hil finds them with no checkout and installs no
top-level `suites` or `rigs` package. pyproject's package-dir cannot map a single file (gate.yaml), so
one copy step does all three. An editable install skips it: hil finds them in the checkout.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DEFAULTS = ("suites", "rigs", "gate.yaml")


class BuildWithDefaults(build_py):
    """build_py, plus hil's default suites, rigs and gate policy copied into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for name in DEFAULTS:
            source, target = Path(name), Path(self.build_lib, "hil", name)
            # Fail the build rather than ship a hil that silently lacks its suites or policy.
            if not source.exists():
                raise FileNotFoundError(f"{source.resolve()} is missing: a wheel without it is incomplete")
            if source.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)


setup(cmdclass={"build_py": BuildWithDefaults})
