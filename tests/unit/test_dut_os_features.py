"""OS features are a closed set: every name is written out once with what it means, a profile may declare
only the declarable ones, and a misspelt name in a suite, in a `requires_os` marker or a
`dut.require_os(...)` call, stops the run at collection instead of surfacing mid-test."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from hil.errors import HilError
from hil.lab.rig import load_rig
from hil.os.vocabulary import FEATURES, OS_FEATURES, DeclaredFeature, DerivedFeature


def test_each_feature_is_declared_or_derived_and_described_once() -> None:
    declared, derived = set(get_args(DeclaredFeature)), set(get_args(DerivedFeature))
    assert not declared & derived
    assert declared | derived == set(OS_FEATURES) == set(FEATURES)
    assert all(FEATURES[f].strip() for f in OS_FEATURES)


@pytest.mark.parametrize("listed", ["rig-ntp", "steps-clokc"])
def test_a_profile_declares_only_declarable_features(tmp_path: Path, listed: str) -> None:
    rig = tmp_path / "bench.yaml"
    rig.write_text(
        f"kind: qemu\ndevice_type: qemux86-64\nos:\n  extends: reference\n  features: [{listed}]\n"
    )
    with pytest.raises(HilError, match="features"):
        load_rig(rig)


MISSPELT = {
    "marker": {
        "test_x.py": "import pytest\n\n@pytest.mark.requires_os('ab-updates')\ndef test_x():\n    pass\n",
    },
    "call in a test": {
        "test_x.py": "def test_x(hil_dut):\n    hil_dut.require_os('ab-updates')\n",
    },
    "call in a fixture": {
        "conftest.py": "import pytest\n\n@pytest.fixture\ndef ntp(hil_dut):\n"
        "    hil_dut.require_os(feature='ab-updates')\n",
        "test_x.py": "def test_x():\n    pass\n",
    },
    "call in a helper module": {
        "steps.py": "def install(dut):\n    dut.require_os('ab-updates')\n",
        "test_x.py": "def test_x():\n    pass\n",
    },
}


@pytest.mark.parametrize("where", list(MISSPELT))
def test_a_misspelt_feature_is_a_usage_error_at_collection(pytester: pytest.Pytester, where: str) -> None:
    for name, source in MISSPELT[where].items():
        (pytester.path / name).write_text(source)
    result = pytester.runpytest("--collect-only", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "'ab-updates'): unknown OS feature; known: " in result.stderr.str()
    assert "ab-update, bundle-signatures" in result.stderr.str()


def test_features_spelt_right_collect(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_x="import pytest\n\n@pytest.mark.requires_os('ab-update')\n"
        "def test_x(hil_dut):\n    hil_dut.require_os('rig-ntp')\n    hil_dut.require_os(name)\n"
    )
    result = pytester.runpytest("--collect-only", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
