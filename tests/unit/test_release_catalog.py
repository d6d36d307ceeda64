"""hil's own collection of the installed suites: the tests a complete run holds, named as a run's JUnit
names them, whatever the caller's selection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hil.errors import HilError
from hil.release.catalog import collect
from hil.results.read import read_results

SUITE = """
import pytest

@pytest.fixture(scope="session", autouse=True)
def facts(hil_suite_property):
    facts = {"hil.device_type": "qemux86-64", "hil.device_type_source": "image", "hil.image_sha256": "0" * 64,
             "hil.run_id": "r", "hil.started": "2026-11-22T06:00:00"}
    for name, value in facts.items():
        hil_suite_property(name, value)

def test_plain():
    pass

@pytest.mark.parametrize("arg", ["a[1]", "b::c"])
def test_param(arg):
    pass

class TestGroup:
    def test_in_class(self):
        pass
"""


def suites(tmp_path: Path, extra: dict[str, str] | None = None) -> list[Path]:
    root = tmp_path / "suites"
    for path, text in {"boot/test_boot.py": SUITE, "networking/sub/test_net.py": "def test_x():\n    pass\n",
                       **(extra or {})}.items():  # fmt: skip
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return [root / "boot", root / "networking"]


def test_the_catalog_names_tests_as_a_runs_junit_does(tmp_path: Path) -> None:
    dirs = suites(tmp_path)
    catalog = collect(dirs)
    assert catalog.suites == {
        "boot": {"test_boot::test_plain", "test_boot::test_param[a[1]]", "test_boot::test_param[b::c]",
                 "test_boot.TestGroup::test_in_class"},
        "networking": {"sub.test_net::test_x"},
    }  # fmt: skip
    # A run started elsewhere (here: inside the suite folder) names the same tests the same way.
    junit = tmp_path / "out" / "junit.xml"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
               f"--junitxml={junit}", "."]  # fmt: skip
    subprocess.run(command, cwd=dirs[0], capture_output=True, timeout=120, check=True)
    assert {a.local for a in read_results([junit.parent]).attempts} == catalog.suites["boot"]
    assert len(catalog.sha256) == 64


def test_the_callers_selection_does_not_shrink_the_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = suites(tmp_path)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = --deselect suites/boot/test_boot.py::test_plain\n"
    )
    monkeypatch.setenv("PYTEST_ADDOPTS", "-k test_x")
    assert len(collect(dirs).suites["boot"]) == 4


def test_a_suite_module_that_skips_itself_at_collection_is_an_error(tmp_path: Path) -> None:
    skipping = "import pytest\npytest.skip('not here', allow_module_level=True)\n"
    dirs = suites(tmp_path, {"boot/test_skips.py": skipping})
    with pytest.raises(HilError, match=r"test_skips\.py skips itself at collection"):
        collect(dirs)


def test_a_suite_that_does_not_import_is_an_error(tmp_path: Path) -> None:
    dirs = suites(tmp_path, {"boot/test_broken.py": "import no_such_module\n"})
    with pytest.raises(HilError, match=r"cannot collect the suites boot, networking \(pytest exit 2\)"):
        collect(dirs)
