"""gate.yaml: validated, with errors that name the file, the line and the field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hil.errors import RigConfigError
from hil.os import FEATURES, available, get_profile
from hil.release.policy import DEFAULT_POLICY, load_policy


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(text)
    return path


def test_the_default_policy_requires_the_four_suites_on_qemux86_64() -> None:
    policy = load_policy(DEFAULT_POLICY)
    rules = policy.rules_for("qemux86-64")
    assert rules is not None
    assert {name: rule.min_tests for name, rule in rules.suites.items()} == {
        "boot": 5,
        "networking": 3,
        "time_sync": 3,
        "hostapp_update": 3,
    }
    # The only skip a virtual board may show is the wifi test: it has no radio.
    assert {name: rule.allow_skips for name, rule in rules.suites.items() if rule.allow_skips} == {
        "networking": ["test_joins_the_rigs_wifi_access_point"]
    }
    assert len(policy.sha256) == 64
    # A generic systemd OS may lack what only hil's reference image and balenaOS have; nothing else.
    assert policy.model.os_profiles["generic"].may_lack == [
        "ab-update", "console-login", "config-hostname", "https-time", "persisted-clock", "time-ordering",
        "steps-clock", "bundle-signatures",
    ]  # fmt: skip
    assert policy.model.os_profiles["reference"].may_lack == [
        "failed-units",
        "ready-check",
        "bundle-signatures",
    ]
    assert policy.may_lack("generic", "ab-update")
    assert not policy.may_lack("generic", "rig-dns")
    assert not policy.may_lack("reference", "ab-update")
    assert not policy.may_lack("generic", "")


def test_a_zero_minimum_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "device_types:\n  qemux86-64:\n    suites:\n      boot:\n        min_tests: 5\n"
        "      networking:\n        min_tests: 0\n",
    )
    with pytest.raises(RigConfigError) as err:
        load_policy(path)
    assert str(err.value).startswith(f"{path}:7: device_types.qemux86-64.suites.networking.min_tests:")
    assert "greater than 0" in str(err.value)


def test_a_misspelt_key_is_refused_at_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "device_types:\n  qemux86-64:\n    suites:\n      boot:\n"
        "        min_tests: 5\n        allow_skip: []\n",
    )
    with pytest.raises(RigConfigError) as err:
        load_policy(path)
    assert str(err.value) == f"{path}:6: device_types.qemux86-64.suites.boot.allow_skip: unknown field"


def test_a_missing_minimum_is_refused_at_its_suite(tmp_path: Path) -> None:
    path = write(
        tmp_path, "device_types:\n  qemux86-64:\n    suites:\n      boot:\n        allow_skips: []\n"
    )
    with pytest.raises(
        RigConfigError,
        match=r"gate\.yaml:4: device_types\.qemux86-64\.suites\.boot\.min_tests: required field is missing",
    ):
        load_policy(path)


def test_a_device_type_with_no_suites_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "device_types:\n  qemux86-64:\n    suites: {}\n")
    with pytest.raises(RigConfigError, match=r"gate\.yaml:3: device_types\.qemux86-64\.suites: "):
        load_policy(path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RigConfigError, match=r"gate\.yaml:1: device_types: required field is missing"):
        load_policy(write(tmp_path, ""))


def test_broken_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "device_types:\n  qemux86-64:\n    suites: [boot\n")
    with pytest.raises(RigConfigError, match=r"gate\.yaml:4: not valid YAML"):
        load_policy(path)


def test_a_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RigConfigError, match=r"nope\.yaml: cannot read"):
        load_policy(tmp_path / "nope.yaml")


def test_skips_match_a_test_id_or_its_function_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "device_types:\n  qemux86-64:\n    suites:\n      time_sync:\n"
        "        min_tests: 3\n"
        "        allow_skips: ['test_rtc_*', 'suites.time_sync.test_x::test_y', 'test_z[ssh]']\n",
    )
    rule = load_policy(path).model.device_types["qemux86-64"].suites["time_sync"]
    assert rule.skip_allowed("suites.time_sync.test_time_sync::test_rtc_persists")
    assert rule.skip_allowed("suites.time_sync.test_x::test_y")
    assert rule.skip_allowed("suites.time_sync.test_x::test_z[ssh]")
    assert not rule.skip_allowed("suites.time_sync.test_time_sync::test_chrony")


OS_PROFILE = "device_types:\n  qemux86-64:\n    suites:\n      boot: {min_tests: 5}\nos_profiles:\n"


def test_an_unknown_os_feature_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, OS_PROFILE + "  generic:\n    may_lack:\n      - ab-update\n      - ab-updates\n")
    with pytest.raises(RigConfigError) as err:
        load_policy(path)
    assert str(err.value).startswith(f"{path}:9: os_profiles.generic.may_lack.1: Input should be ")


def test_an_os_profile_that_declares_nothing_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, OS_PROFILE + "  generic:\n    may_lack: []\n")
    with pytest.raises(RigConfigError, match=r"gate\.yaml:7: os_profiles\.generic\.may_lack: "):
        load_policy(path)


def test_a_misspelt_os_profile_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, OS_PROFILE + "  generic:\n    may_lack: [ab-update]\n    may_skip: [x]\n")
    with pytest.raises(RigConfigError, match=r"gate\.yaml:8: os_profiles\.generic\.may_skip: unknown field"):
        load_policy(path)


@pytest.mark.timeout(30)
def test_a_policy_that_is_a_fifo_or_huge_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(RigConfigError, match=r"fifo\.yaml: cannot read: not a regular file \(a FIFO\)"):
        load_policy(fifo)
    huge = write(tmp_path, "# " + "x" * (2 << 20))
    with pytest.raises(RigConfigError, match=r"gate\.yaml: cannot read: larger than"):
        load_policy(huge)


def test_the_default_policy_lets_each_built_in_profile_lack_exactly_what_it_lacks() -> None:
    """A healthy run of each built-in OS skips only what its profile says it lacks; the policy accepts
    exactly that, so a profile that loses a feature is refused until the policy says otherwise."""
    policy = load_policy(DEFAULT_POLICY)
    for name in available():
        lacks = sorted(f for f in FEATURES if not get_profile(name).has(f))
        assert sorted(policy.model.os_profiles[name].may_lack) == lacks, name
