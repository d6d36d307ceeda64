"""hil installed from its wheel, outside the checkout: the wheel carries the suites, rigs and gate policy
under hil/ (and nothing top-level but hil), `hil` and `pytest --pyargs hil.suites` find them from any
directory, a user's ./rigs and ./gate.yaml still win, and `hil run` has everything it needs at run time
from the wheel's own dependencies (the venv holds nothing else). Builds and installs; only the test marked
`qemu` boots boards."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SUITES = {"boot", "networking", "time_sync", "hostapp_update"}
SHIPPED = ("suites", "rigs", "gate.yaml")

# Local state and build output: a build must not see it (and .venv is large).
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "artifacts", "*.egg-info", "__pycache__", ".*cache", ".hypothesis"
)

# Run inside the installed hil: where it finds its suites, rigs, pools and policy by default.
FINDINGS = """
import json
from hil.lab.suites import suite_paths
from hil.lab.pool import pools
from hil.release.policy import load_policy
from hil.lab.rig import available
policy = load_policy()
print(json.dumps({
    "suites": {p.name: str(p) for p in suite_paths(None)},
    "rigs": {name: str(path) for name, path in available().items()},
    "pools": sorted(pools()),
    "policy": str(policy.path),
    "policy_sha256": policy.sha256,
}))
"""

# A pytest plugin: what the release gate (hil.suite) and the skips (markers) see of each collected test.
PROBE = """
import json, os

def pytest_collection_finish(session):
    found = [
        {"suite": dict(item.user_properties).get("hil.suite"), "test": item.name,
         "markers": sorted({m.name for m in item.iter_markers()})}
        for item in session.items
    ]
    with open(os.environ["HIL_PROBE_OUT"], "w") as f:
        json.dump(found, f)
"""


@dataclass(frozen=True)
class Installed:
    """hil installed from its wheel into a fresh venv, and an empty directory outside the checkout."""

    wheel: Path
    venv: Path
    package: Path  # the installed hil package
    elsewhere: Path
    env: dict[str, str]
    dependencies: set[str]  # the distributions besides hil in the venv, by canonical name

    def run(self, *args: str | Path, cwd: Path | None = None, check: bool = True, **env: str) -> str:
        """Run a command of the venv (`hil`, `python`) from `cwd` (default: elsewhere); its stdout, and
        with check=False its stderr too, whatever its exit status."""
        command = [str(self.venv / "bin" / str(args[0])), *map(str, args[1:])]
        out = subprocess.run(command, cwd=cwd or self.elsewhere, env=self.env | env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
        if not check:
            return out.stdout + out.stderr
        assert out.returncode == 0, f"{' '.join(command)} exited {out.returncode}:\n{out.stdout}{out.stderr}"
        return out.stdout

    def findings(self, cwd: Path | None = None) -> dict[str, Any]:
        """Where the installed hil finds its defaults when run from `cwd`."""
        return json.loads(self.run("python", "-c", FINDINGS, cwd=cwd))


def _clean_env(tmp: Path) -> dict[str, str]:
    """The environment without anything that points hil at the checkout or makes it an xdist worker."""
    dropped = ("HIL_RIGS_DIR", "HIL_SUITES_DIR", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("PYTEST_")}
    return env | {"HIL_CACHE_DIR": str(tmp / "cache")}


def _requires(wheel: Path) -> list[str]:
    """The wheel's own Requires-Dist, as its METADATA says them."""
    with zipfile.ZipFile(wheel) as archive:
        [metadata] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def _the_wheels_dependencies(wheel: Path, target: Path) -> tuple[Path, set[str]]:
    """The distributions the wheel requires, and theirs, found in this venv and linked into `target` (no
    download): the fresh venv gets those and nothing else, hil itself only from the wheel. Also their names.
    A dependency missing from the wheel's metadata is then missing from the venv, as from a user's."""
    site = Path(sysconfig.get_paths()["purelib"])
    installed = {canonicalize_name(d.metadata["Name"]): d for d in distributions(path=[str(site)])}
    wanted: dict[str, object] = {}
    todo = [(Requirement(r), frozenset()) for r in _requires(wheel)]
    done: set[tuple[str, frozenset]] = set()
    while todo:
        requirement, extras = todo.pop()
        if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in (*extras, "")):
            continue
        name, wanted_extras = canonicalize_name(requirement.name), frozenset(requirement.extras)
        if (name, wanted_extras) in done:
            continue
        done.add((name, wanted_extras))
        dist = installed.get(name)
        assert dist is not None, f"{name}, which hil's wheel requires, is not installed in {site}"
        wanted[name] = dist
        todo += [(Requirement(r), wanted_extras) for r in dist.requires or ()]
    target.mkdir()
    for dist in wanted.values():
        for top in {Path(f).parts[0] for f in dist.files or ()} - {".."}:
            if (site / top).exists() and not (target / top).exists():
                (target / top).symlink_to(site / top)
    return target, set(wanted)


def _pip(*args: str | Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", *map(str, args)], check=True, timeout=300)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Build the wheel from a copy of the checkout (builds never write into it), install it, no deps."""
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", ignore=_NOT_SOURCE)
    _pip("wheel", "--no-deps", "--wheel-dir", tmp / "dist", tmp / "src")
    [wheel] = (tmp / "dist").glob("hil-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    _pip("--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", wheel)
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = subprocess.run([venv / "bin" / "python", "-c", where], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()  # fmt: skip
    deps, names = _the_wheels_dependencies(wheel, tmp / "deps")
    (Path(site) / "hil_test_dependencies.pth").write_text(f"{deps}\n")
    (tmp / "elsewhere").mkdir()
    yield Installed(wheel, venv, Path(site) / "hil", tmp / "elsewhere", _clean_env(tmp), names)


def _source_files(top: Path) -> set[str]:
    """Files under `top` (a file or folder of the checkout) as the wheel names them, caches left out."""
    files = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
    return {p.relative_to(ROOT).as_posix() for p in files if "__pycache__" not in p.parts}


def test_the_wheel_holds_the_suites_rigs_and_policy_under_hil_and_nothing_else_top_level(
    installed: Installed,
) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        assert wheel.read("hil/gate.yaml") == (ROOT / "gate.yaml").read_bytes()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"hil"}
    missing = _source_files(ROOT / "hil") - names
    for name in SHIPPED:
        missing |= {f"hil/{f}" for f in _source_files(ROOT / name)} - names
    assert not missing, f"the wheel lacks {sorted(missing)}"


def test_hil_finds_its_shipped_rigs_pools_suites_and_policy_from_any_directory(installed: Installed) -> None:
    listing = installed.run("hil", "rig", "list")
    shipped_rigs = {p.stem for p in (ROOT / "rigs").glob("*.yaml")} - {"pools"}
    assert shipped_rigs <= {line.split()[0] for line in listing.splitlines()[1:]}
    assert "--suite" in installed.run("hil", "run", "--help")

    found = installed.findings()
    assert set(found["suites"]) == SUITES
    assert set(found["rigs"]) == shipped_rigs
    assert set(found["pools"]) >= set(yaml.safe_load((ROOT / "rigs" / "pools.yaml").read_text()))
    paths = [*found["suites"].values(), *found["rigs"].values(), found["policy"]]
    assert all(Path(p).is_relative_to(installed.package) for p in paths), paths
    assert found["policy_sha256"] == hashlib.sha256((ROOT / "gate.yaml").read_bytes()).hexdigest()


def _collected(python: Path, args: list[str], cwd: Path, env: dict[str, str], tmp: Path) -> list[dict]:
    """What `pytest --collect-only ARGS` collects, as the probe plugin sees it (sorted)."""
    (tmp / "hil_collect_probe.py").write_text(PROBE)
    out = tmp / "collected.json"
    env = env | {"PYTHONPATH": str(tmp), "HIL_PROBE_OUT": str(out)}
    command = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-p", "hil_collect_probe",
               "--collect-only", "-q", "--strict-markers", *args]  # fmt: skip
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{' '.join(command)} exited {run.returncode}:\n{run.stdout}{run.stderr}"
    return sorted(json.loads(out.read_text()), key=lambda t: (t["suite"] or "", t["test"]))


def test_pytest_collects_the_installed_suites_by_module_name_as_the_checkout_does(
    installed: Installed, tmp_path: Path
) -> None:
    (tmp_path / "installed").mkdir()
    (tmp_path / "checkout").mkdir()
    found = _collected(installed.venv / "bin" / "python", ["--pyargs", "hil.suites", "--rig", "qemu-x86_64"],
                       installed.elsewhere, installed.env, tmp_path / "installed")  # fmt: skip
    expected = _collected(Path(sys.executable), ["suites", "--rig", "qemu-x86_64"], ROOT,
                          _clean_env(tmp_path), tmp_path / "checkout")  # fmt: skip
    counts = {s: sum(t["suite"] == s for t in found) for s in SUITES}
    assert all(counts.values()), counts
    assert {t["suite"] for t in found} == SUITES
    assert any("requires" in t["markers"] for t in found)
    assert found == expected


def test_a_users_rigs_and_gate_policy_win_over_the_shipped_ones(installed: Installed, tmp_path: Path) -> None:
    (tmp_path / "rigs").mkdir()
    shutil.copy(ROOT / "rigs" / "qemu-x86_64.yaml", tmp_path / "rigs" / "qemu-x86_64.yaml")
    (tmp_path / "gate.yaml").write_text("# the lab's own\n" + (ROOT / "gate.yaml").read_text())
    found = installed.findings(cwd=tmp_path)
    assert Path(found["rigs"].pop("qemu-x86_64")) == tmp_path / "rigs" / "qemu-x86_64.yaml"
    assert found["rigs"] and all(Path(p).is_relative_to(installed.package) for p in found["rigs"].values())
    assert (tmp_path / found["policy"]).resolve() == (tmp_path / "gate.yaml").resolve()


def test_the_venv_holds_the_wheel_and_its_dependencies_and_nothing_of_the_test_extra(
    installed: Installed,
) -> None:
    assert {"pytest", "allure-pytest", "pyyaml"} <= installed.dependencies
    assert not {"hypothesis", "ruff", "pytest-timeout", "import-linter"} & installed.dependencies
    found = installed.run("python", "-c", "import hypothesis", check=False)
    assert "No module named 'hypothesis'" in found


def test_the_pytest_options_hil_run_adds_for_several_boards_need_nothing_but_the_wheel(
    installed: Installed,
) -> None:
    """`hil run --boards auto` on a QEMU rig passes `-n N --dist loadfile` (pytest-xdist): an install from
    the wheel alone must understand them (they were "unrecognized arguments: -n 2" when pytest-xdist was
    only in the test extra)."""
    out = installed.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
        "-n", "2", "--dist", "loadfile",
        "--pyargs", "hil.suites.boot", "hil.suites.time_sync", "--rig", "qemu-x86_64", check=False,
    )  # fmt: skip
    assert "unrecognized arguments" not in out and "error" not in out.lower(), out


@pytest.mark.qemu
@pytest.mark.slow
def test_hil_run_from_the_wheel_alone_runs_two_suites_on_two_boards_from_an_empty_directory(
    installed: Installed, tmp_path: Path
) -> None:
    """The main job's command, as a user who installed only the wheel runs it: two suites, so two boards
    (`--boards auto` on a 2-core host; `--boards 2` on a smaller one), each under its own xdist worker."""
    from tests.support.e2e import boards_root, qemu_pids, reference_disk

    empty = tmp_path / "empty"
    empty.mkdir()
    boards = [] if len(os.sched_getaffinity(0)) >= 2 else ["--boards", "2"]
    command = [str(installed.venv / "bin" / "hil"), "run", "--suite", "boot", "--suite", "time_sync",
               "--image", str(reference_disk()), "--artifacts", str(tmp_path / "art"), "--no-gate",
               *boards]  # fmt: skip
    env = installed.env | {"HIL_WORKDIR_ROOT": str(boards_root(tmp_path)), "PYTHONUNBUFFERED": "1"}
    try:
        out = subprocess.run(command, cwd=empty, env=env, capture_output=True, text=True, timeout=1800)
    finally:
        assert qemu_pids(tmp_path) == []
    assert out.returncode == 0, f"{out.stdout[-4000:]}{out.stderr[-4000:]}"
    assert "hil: 2 boards at once" in out.stderr
    assert list(empty.iterdir()) == []  # nothing written where it ran
    junit = ET.parse(tmp_path / "art" / "junit.xml").getroot()
    suites = {p.get("value") for p in junit.iter("property") if p.get("name") == "hil.suite"}
    assert suites == {"boot", "time_sync"}
