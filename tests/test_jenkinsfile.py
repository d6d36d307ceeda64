"""The Jenkins pipelines parse as Groovy, every `hil` command in them is one hil's CLI accepts, and every
stage is bounded in time; the suites stage takes its rig by lock and keeps its evidence even on failure."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from hil.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = sorted((ROOT / "jenkins").glob("*Jenkinsfile"))
STEPS = Path(__file__).with_name("jenkinsfile_steps.groovy")

# What each shell variable in the pipelines may hold: a pipeline that gains a variable gains a line here.
SAMPLES: dict[str, tuple[str, str]] = {
    "RIG": ("qemu-x86_64#0", "lab-rpi4-01"),
    "DEVICE_TYPE": ("qemux86-64", "raspberrypi4-64"),
    "RELEASE": ("7", "b2f4c1e"),
    "IMAGE_ARGS": ("--image /srv/images/balena-raspberrypi4-64-6.1.img.zip", ""),
    "SUITE_ARGS": ("--suite boot --suite networking", ""),
}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def _parse(pipeline: Path) -> list[dict]:
    if shutil.which("groovy") is None:
        pytest.skip("groovy is not installed (apt-get install groovy default-jre-headless)")
    out = subprocess.run(["groovy", str(STEPS), str(pipeline)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{pipeline.name} does not parse as Groovy:\n{out.stderr}"
    return [json.loads(line) for line in out.stdout.splitlines()]


def _hil_commands(pipeline: Path) -> list[str]:
    scripts = [item["sh"] for item in _parse(pipeline) if "sh" in item]
    return [line.strip() for s in scripts for line in s.splitlines() if line.strip().startswith("hil ")]


def _expand(command: str, variant: int) -> str:
    def sample(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in SAMPLES, f"no sample value for ${name} in {command!r}: add one to SAMPLES"
        return SAMPLES[name][variant]

    return _VARIABLE.sub(sample, command)


@pytest.fixture(scope="module", params=[p.name for p in PIPELINES])
def pipeline(request: pytest.FixtureRequest) -> Path:
    return ROOT / "jenkins" / request.param


def test_every_hil_command_in_the_pipeline_is_accepted_by_the_cli(pipeline: Path) -> None:
    commands = _hil_commands(pipeline)
    assert commands, f"{pipeline.name} runs no hil command"
    parser = build_parser()
    for command in commands:
        for variant in (0, 1):
            words = shlex.split(_expand(command, variant))
            try:
                parser.parse_args(words[1:])
            except SystemExit:
                pytest.fail(f"{pipeline.name}: hil rejects {' '.join(words)!r} (from {command!r})")


def test_every_stage_that_runs_steps_has_a_timeout(pipeline: Path) -> None:
    stages = [item for item in _parse(pipeline) if "stage" in item and "steps" in item["calls"]]
    assert stages
    for stage in stages:
        assert "timeout" in stage["calls"], f"{pipeline.name}: stage {stage['stage']!r} has no timeout"


def test_the_suites_run_on_a_locked_rig_and_keep_their_evidence_even_on_failure() -> None:
    stages = {item["stage"]: item for item in _parse(ROOT / "jenkins" / "Jenkinsfile") if "stage" in item}
    on_rig = stages["on a rig"]
    assert {"lock", "catchError"} <= set(on_rig["calls"])
    assert {"junit", "allure", "archiveArtifacts", "stash"} <= set(on_rig["always"])
    text = (ROOT / "jenkins" / "Jenkinsfile").read_text()
    assert """lock(label: "hil-${DEVICE_TYPE}", quantity: 1, variable: 'RIG')""" in text
    gate = _hil_commands(ROOT / "jenkins" / "Jenkinsfile")
    assert any(c.startswith("hil release gate ") for c in gate)


def test_the_matrix_covers_the_device_types_the_gate_collects() -> None:
    text = (ROOT / "jenkins" / "Jenkinsfile").read_text()
    axis = re.search(r"name 'DEVICE_TYPE'\s+values (.+)", text)
    listed = re.search(r"def DEVICE_TYPES = \[(.+)\]", text)
    assert axis and listed
    assert re.findall(r"'([^']+)'", axis.group(1)) == re.findall(r"'([^']+)'", listed.group(1))


def test_a_pipeline_with_a_syntax_error_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "Jenkinsfile"
    broken.write_text("pipeline {\n  stages { stage('x') { steps { sh 'hil run' }\n}\n")
    with pytest.raises(AssertionError, match="does not parse as Groovy"):
        _parse(broken)


def test_a_command_the_cli_does_not_know_is_caught(tmp_path: Path) -> None:
    pipeline = tmp_path / "Jenkinsfile"
    pipeline.write_text("""pipeline { stages { stage('x') { steps { sh 'hil run --rigg "$RIG"' } } } }\n""")
    with pytest.raises(pytest.fail.Exception, match="hil rejects 'hil run --rigg qemu-x86_64#0'"):
        test_every_hil_command_in_the_pipeline_is_accepted_by_the_cli(pipeline)
