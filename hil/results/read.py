"""Reading a run's results: every JUnit XML file under the given folders (the record), then the
allure-results beside them, cross-checked against it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hil.results.allure import read_allure
from hil.results.junit import read_junit, read_recorded_junit
from hil.results.model import Reader, RecordedJunit, ResultSet, walk


def read_results(dirs: Iterable[Path], recorded: Iterable[RecordedJunit] = ()) -> ResultSet:
    """Read every JUnit XML file, then every allure-results directory, under `dirs`; and the JUnit files
    of `recorded` runs, as the run store kept them."""
    results = ResultSet()
    reader = Reader(results)
    for run in recorded:
        read_recorded_junit(reader, run)
    roots = []
    for root in map(Path, dirs):
        if root.is_dir():
            roots.append(root)
        else:
            results.problems.append(f"results directory {root} does not exist")
    allure_dirs: set[Path] = set()
    for root in roots:
        for path in walk(root, results.problems):
            if path.name.endswith(".xml"):
                read_junit(reader, path)
            elif path.name.endswith("-result.json"):
                allure_dirs.add(path.parent)
    # JUnit first: it is the record; Allure results of the same runs are checked against it.
    for allure_dir in sorted(allure_dirs):
        read_allure(reader, allure_dir)
    for root in roots:
        if not any(Path(f).is_relative_to(root) for f in results.files):
            results.problems.append(f"{root} holds no JUnit XML and no allure results")
    return results
