"""Shared suite fixtures skip what does not apply, saying why: a rig or an OS without the feature."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.os import get_profile
from tests.e2e import run_pytest, write_rig

NEEDS_WIFI = """
import pytest

@pytest.mark.requires("wifi")
def test_needs_wifi(rig):
    pass

def test_needs_nothing(rig):
    pass
"""


def test_a_test_requiring_wifi_is_skipped_on_a_rig_without_it_naming_what_the_rig_has(tmp_path: Path) -> None:
    (tmp_path / "test_wifi.py").write_text(NEEDS_WIFI)
    rig = write_rig(tmp_path, "no-wifi", boot_timeout=60)
    args = ("-p", "hil.services.fixtures", "--rig", str(rig), "--rootdir", str(tmp_path), "-rs")
    out = run_pytest(tmp_path, str(tmp_path / "test_wifi.py"), *args, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "1 passed, 1 skipped" in out.stdout
    assert "needs a rig with wifi; rig no-wifi (qemu) has no optional features" in out.stdout


def test_an_os_without_a_feature_says_which_and_what_it_would_do() -> None:
    generic, reference = get_profile("generic"), get_profile("reference")
    assert reference.lacks("https-time") is None
    assert generic.lacks("https-time") == (
        "OS profile 'generic' does not set its clock from an HTTPS Date header "
        "(config.json apiEndpoint, balenaRootCA)"
    )
    with pytest.raises(KeyError, match="unknown OS feature 'teleport'"):
        reference.lacks("teleport")


@pytest.mark.parametrize("name", ["reference", "generic"])
def test_both_suite_profiles_state_every_bound_the_suites_wait_on(name: str) -> None:
    profile = get_profile(name)
    for bound in ("dhcp_lease", "dns_answer", "link_notice", "link_recovery", "ntp_sync", "ntp_offline",
                  "ntp_resync", "skew_correction", "https_time", "clock_tolerance", "holdover_tolerance",
                  "https_time_tolerance"):  # fmt: skip
        assert profile.bound(bound) > 0
