"""End to end with an OS hil did not shape: the project's plain Debian 12 image (systemd, openssh, chrony,
systemd-networkd, a distribution kernel, its own GRUB EFI) under the generic OS profile.

- With only the console password: hil logs in, adds its key over the console, and the boot, networking
  and time-sync suites pass, each skip naming the OS feature the profile lacks.
- With only a key file (root's password locked): no console login, SSH with the user's key, the same.
- A wrong password and an image without sshd each end in their one-line diagnosis, no QEMU left behind.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from hil.images.builders.debian import build_debian
from tests.support.e2e import leftover_disks, qemu_pids, run_pytest

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

PASSWORD_ENV = "HIL_E2E_DEBIAN_PASSWORD"
PASSWORD = "hil-debian"  # the builder's default; rig names here must not contain it (QEMU's -name is hil-RIG)


def _rig(tmp: Path, name: str, credentials: str, *, ssh: float = 120) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        f"kind: qemu\ndevice_type: qemux86-64\nos: generic\ncredentials:\n{credentials}"
        f"qemu:\n  memory: 1024\ntimeouts:\n  boot: 300\n  ssh: {ssh}\n  command: 120\n"
    )
    return path


@pytest.fixture(autouse=True)
def _password_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)  # what a CI agent's secret store does


def _run(tmp: Path, rig: Path, image: Path, *args: str, timeout: float) -> tuple[CompletedProcess, Path]:
    junit = tmp / "junit.xml"
    hil = ("--rig", str(rig), "--image", str(image), "--device-type", "qemux86-64", "-rs", "--hil-artifacts",
           str(tmp / "art"), f"--junitxml={junit}", "-o", "junit_family=xunit1")  # fmt: skip
    out = run_pytest(tmp, *args, *hil, timeout=timeout)
    assert qemu_pids(tmp) == [], "a QEMU process outlived the run"
    assert leftover_disks(tmp) == [], "a board directory outlived the run"
    return out, junit


def _outcomes(junit: Path) -> dict[str, dict[str, int]]:
    """suite -> outcome -> count; every skip must name a missing feature or capability."""
    counts: dict[str, dict[str, int]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        if outcome == "skipped":
            assert props.get("hil.missing_feature") or props.get("hil.missing_capability"), (
                f"{case.get('name')} was skipped without naming what is missing"
            )
        suite = counts.setdefault(props.get("hil.suite", "?"), {})
        suite[outcome] = suite.get(outcome, 0) + 1
    return counts


def _no_secret_anywhere(folder: Path, secret: str) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"the password leaked into {path}"


@pytest.mark.timeout(2400)  # the inner run's own bound (1800 s) must fire first, leaving its JUnit
def test_the_suites_pass_on_debian_with_only_the_console_password(tmp_path: Path) -> None:
    image = build_debian("password").disk
    rig = _rig(tmp_path, "deb-pw", f"  password_env: {PASSWORD_ENV}\n")
    suites = ("suites/boot", "suites/networking", "suites/time_sync")
    out, junit = _run(tmp_path, rig, image, *suites, timeout=1800)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    counts = _outcomes(junit)
    print("per-suite outcomes, password variant:", counts)
    assert set(counts) == {"boot", "networking", "time_sync"}
    assert all(c.get("failure", 0) == c.get("error", 0) == 0 for c in counts.values())
    assert counts["boot"]["passed"] >= 8 and counts["networking"]["passed"] >= 5
    assert counts["time_sync"]["passed"] >= 2
    _no_secret_anywhere(tmp_path, PASSWORD)  # transcripts, QEMU logs, JUnit


@pytest.mark.timeout(1500)
def test_the_boot_suite_passes_on_debian_with_only_a_key_file(tmp_path: Path) -> None:
    built = build_debian("key")
    assert built.private_key is not None
    rig = _rig(tmp_path, "deb-key", f"  key_file: {built.private_key}\n")
    out, junit = _run(tmp_path, rig, built.disk, "suites/boot", timeout=1200)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    counts = _outcomes(junit)
    print("per-suite outcomes, key variant:", counts)
    assert counts["boot"].get("failure", 0) == counts["boot"].get("error", 0) == 0
    skipped = {
        p.get("value")
        for p in ET.parse(junit).getroot().iter("property")
        if p.get("name") == "hil.missing_feature"
    }
    assert "console-login" in skipped  # the console test is skipped: hil has no password to log in with


@pytest.mark.timeout(1200)
def test_a_wrong_password_is_one_line_naming_the_user_and_the_rig(tmp_path: Path) -> None:
    image = build_debian("password").disk
    rig = _rig(tmp_path, "deb-wrong", "  password: not-the-password\n")
    out, _ = _run(tmp_path, rig, image, "suites/boot", "-x", timeout=900)
    assert out.returncode != 0
    assert "LoginRefused: the console of deb-wrong refused the login as 'root'" in out.stdout
    assert "Traceback" not in out.stdout
    _no_secret_anywhere(tmp_path / "art", "not-the-password")


@pytest.mark.timeout(1200)
def test_an_image_without_sshd_runs_console_tests_and_names_the_missing_server(tmp_path: Path) -> None:
    image = build_debian("no-sshd").disk
    rig = _rig(tmp_path, "deb-nossh", f"  password_env: {PASSWORD_ENV}\n", ssh=20)
    out, junit = _run(tmp_path, rig, image, "suites/boot", "-k", "console or ssh", timeout=900)
    assert out.returncode != 0
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    console = cases["test_logs_in_on_the_serial_console"]
    assert not any(c.tag in ("failure", "error") for c in console), "the console test needs no SSH"
    ssh = cases["test_boots_to_ssh"]
    message = next(c.get("message", "") for c in ssh if c.tag in ("failure", "error"))
    assert "no SSH server: 'sshd' is not running on the DUT" in message
