"""hil installed from its wheel, outside the checkout: the wheel carries the suites, rigs and gate policy
under hil/ (and nothing top-level but hil), `hil` and `pytest --pyargs hil.suites` find them from any
directory, and a user's ./rigs and ./gate.yaml still win. Builds and installs; never boots a board."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

import pytest
import yaml

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

    def run(self, *args: str | Path, cwd: Path | None = None, **env: str) -> str:
        """Run a command of the venv (`hil`, `python`) from `cwd` (default: elsewhere); its stdout."""
        command = [str(self.venv / "bin" / str(args[0])), *map(str, args[1:])]
        out = subprocess.run(command, cwd=cwd or self.elsewhere, env=self.env | env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
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


def _dependencies_without_hil(target: Path) -> Path:
    """This venv's site-packages as symlinks minus hil itself: the fresh venv gets hil's dependencies
    without a download, and hil (its modules, metadata and entry points) only from the wheel."""
    site = Path(sysconfig.get_paths()["purelib"])
    own = {"hil"}
    for dist in distributions(path=[str(site)]):
        if dist.metadata["Name"] == "hil":
            own |= {Path(f).parts[0] for f in dist.files or ()}
    target.mkdir()
    for entry in site.iterdir():
        if entry.name not in own:
            (target / entry.name).symlink_to(entry)
    return target


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
    (Path(site) / "hil_test_dependencies.pth").write_text(f"{_dependencies_without_hil(tmp / 'deps')}\n")
    (tmp / "elsewhere").mkdir()
    yield Installed(wheel, venv, Path(site) / "hil", tmp / "elsewhere", _clean_env(tmp))


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
