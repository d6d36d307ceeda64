"""OS profiles as data: the shipped ones hold every fact the suites ask for, user files extend them, and
every mistake names the file, the line and the field."""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hil.errors import CredentialsError, RigConfigError
from hil.lab.rig import load_rig
from hil.os import get_profile
from hil.os.loader import BUILTIN_DIR, available
from hil.os.model import MASK, Bounds, UpdateBounds
from hil.os.vocabulary import FEATURES

ROOT = Path(__file__).resolve().parents[2]
BUILTIN = sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


@pytest.fixture(autouse=True)
def _only_builtin_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no ./os of the checkout's or the user's
    monkeypatch.delenv("HIL_OS_DIR", raising=False)


def _asked_for() -> tuple[set[str], set[str]]:
    """Every OS feature and every bound the suites and the services they use ask a profile for."""
    features, bounds = set(), set()
    sources = [*(ROOT / "suites").rglob("*.py"), *(ROOT / "hil" / "services").glob("*.py")]
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("requires_os", "require_os"):
                features |= {a.value for a in node.args if isinstance(a, ast.Constant)}
            if isinstance(node, ast.Attribute) and getattr(node.value, "attr", "") == "bounds":
                bounds.add(node.attr)
    return features, bounds


def test_the_suites_ask_only_for_features_and_bounds_a_profile_can_state() -> None:
    features, bounds = _asked_for()
    assert features and bounds, "the walk found nothing: the suites' API changed under this test"
    assert features <= set(FEATURES), f"suites ask for unknown features: {features - set(FEATURES)}"
    stated = set(Bounds.model_fields) | set(UpdateBounds.model_fields)
    assert bounds <= stated, f"suites wait on bounds no profile can state: {bounds - stated}"


@pytest.mark.parametrize("name", BUILTIN)
def test_every_shipped_profile_states_every_bound_and_answers_every_feature(name: str) -> None:
    profile = get_profile(name)
    features, bounds = _asked_for()
    for feature in features:
        assert profile.has(feature) in (True, False)
    for bound in bounds & set(Bounds.model_fields):
        assert getattr(profile.bounds, bound) > 0
    if profile.update is not None:
        for bound in UpdateBounds.model_fields:
            assert getattr(profile.update.bounds, bound) > 0


def test_the_shipped_profiles_are_reference_generic_and_balenaos() -> None:
    assert {"reference", "generic", "balenaos"} <= set(available())


def test_a_user_profile_extends_a_shipped_one_and_states_only_what_differs(tmp_path: Path) -> None:
    os_dir = tmp_path / "os"
    os_dir.mkdir()
    (os_dir / "myos.yaml").write_text(
        "extends: generic\nssh:\n  port: 2222\nlogin:\n  password_env: MYOS_PW\nfeatures: [steps-clock]\n"
    )
    profile = get_profile("myos")
    assert (profile.name, profile.ssh.port, profile.ssh.user) == ("myos", 2222, "root")
    assert profile.login is not None and profile.login.password_env == "MYOS_PW"
    assert profile.has("steps-clock") and profile.has("rig-ntp") and not profile.has("ab-update")
    assert profile.boot.ready_command == get_profile("generic").boot.ready_command


def test_a_user_file_named_like_a_shipped_profile_refines_it(tmp_path: Path) -> None:
    (tmp_path / "os").mkdir()
    (tmp_path / "os" / "generic.yaml").write_text("extends: generic\nbounds:\n  ntp_sync: 30\n")
    profile = get_profile("generic")
    assert profile.bounds.ntp_sync == 30
    assert profile.bounds.reboot == 300  # the rest comes from the shipped generic


def test_null_removes_a_group_the_parent_has(tmp_path: Path) -> None:
    (tmp_path / "os").mkdir()
    (tmp_path / "os" / "noupdate.yaml").write_text("extends: reference\nupdate: null\n")
    assert get_profile("noupdate").lacks("ab-update") == (
        "OS profile 'noupdate' does not have A/B root partitions with host OS updates and rollback"
    )


def test_an_extends_loop_is_refused_not_followed(tmp_path: Path) -> None:
    (tmp_path / "os").mkdir()
    (tmp_path / "os" / "a.yaml").write_text("extends: b\n")
    (tmp_path / "os" / "b.yaml").write_text("extends: a\n")
    with pytest.raises(RigConfigError, match=r"a\.yaml:1: extends: more than 8 profiles deep"):
        get_profile("a")


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("extends: generic\nssh:\n  prot: 22\n", 3, "ssh.prot: unknown field"),
        ("extends: generic\nbounds:\n  ntp_sync: -1\n", 3, "bounds.ntp_sync: Input should be greater than 0"),
        (
            "extends: generic\nnetwork:\n  resolve: host {{nmae}}\n",
            3,
            "network.resolve: .*unknown placeholder",
        ),
        ("extends: generic\nboot:\n  log_command: cat {{file}}\n", 3, "boot.log_command: .*takes no"),
        ("extends: generic\nboot:\n  restart_pattern: '(unclosed'\n", 3, "boot.restart_pattern: .*regular"),
        ("extends: generic\nfeatures: [teleport]\n", 2, "features.0: Input should be"),
        ("extends: nothing\n", 1, "unknown OS profile 'nothing'"),
        ("extends: generic\nlogin:\n  password: x\n  password_env: Y\n", 2, "login: .*not both"),
    ],
)
def test_a_mistake_in_a_profile_names_file_line_and_field(
    tmp_path: Path, text: str, where: int, says: str
) -> None:
    (tmp_path / "os").mkdir()
    (tmp_path / "os" / "bad.yaml").write_text(text)
    with pytest.raises(RigConfigError) as error:
        get_profile("bad")
    message = str(error.value)
    assert "\n" not in message
    if "unknown OS profile" not in says:
        assert message.startswith(f"{tmp_path / 'os' / 'bad.yaml'}:{where}: "), message
    assert pytest.importorskip("re").search(says, message), message


def test_a_field_missing_from_the_whole_chain_is_named_in_the_file_that_lacks_it(tmp_path: Path) -> None:
    (tmp_path / "os").mkdir()
    (tmp_path / "os" / "bare.yaml").write_text("login: null\n")
    with pytest.raises(RigConfigError, match=r"bare\.yaml:1: ssh: required field is missing"):
        get_profile("bare")


def test_an_error_in_an_inherited_field_names_the_parent_file(tmp_path: Path) -> None:
    (tmp_path / "os").mkdir()
    (tmp_path / "os" / "parent.yaml").write_text(
        "extends: generic\nservices:\n  roles:\n    ssh: sshd\n    tyme: x\n"
    )
    (tmp_path / "os" / "child.yaml").write_text("extends: parent\nssh:\n  port: 2200\n")
    with pytest.raises(RigConfigError, match=rf"{tmp_path / 'os' / 'parent.yaml'}:5: services\.roles\.tyme"):
        get_profile("child")


def test_a_template_quotes_what_it_substitutes_so_a_value_is_one_word() -> None:
    resolve = get_profile("generic").network.resolve
    hostile = "x; touch /tmp/pwned #"
    command = resolve.render(name=hostile)
    assert shlex.quote(hostile) in command
    out = subprocess.run(
        ["sh", "-c", f"printf '%s\\n' {shlex.quote(hostile)}"], capture_output=True, text=True
    )
    assert out.stdout == hostile + "\n"
    with pytest.raises(KeyError, match="no value for name"):
        resolve.render()


def _rig(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rig.yaml"
    path.write_text("kind: qemu\ndevice_type: qemux86-64\n" + body)
    return path


def test_a_rig_gives_credentials_without_renaming_the_os(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "keys").mkdir()
    rig = load_rig(_rig(tmp_path, "os: generic\ncredentials:\n  password_env: DEB_PW\n  key_file: keys/id\n"))
    profile = rig.profile
    assert profile.name == "generic"
    assert profile.login is not None and profile.login.user == "root"
    assert profile.ssh.key_file == tmp_path / "keys" / "id"  # relative to the rig file
    with pytest.raises(CredentialsError, match=r"login\.password_env names DEB_PW, which is not set"):
        profile.login.secret(profile.name)
    monkeypatch.setenv("DEB_PW", "s3cret")
    assert profile.login.secret(profile.name) == "s3cret"


def test_a_rig_may_describe_its_os_inline_and_its_errors_name_the_rig_file(tmp_path: Path) -> None:
    rig = load_rig(_rig(tmp_path, "os:\n  extends: generic\n  ssh:\n    port: 2022\n"))
    assert (rig.profile.name, rig.profile.ssh.port) == ("rig", 2022)
    with pytest.raises(
        RigConfigError, match=r"rig\.yaml:6: os\.ssh\.prot: unknown field|rig\.yaml:6: ssh\.prot"
    ):
        load_rig(_rig(tmp_path, "os:\n  extends: generic\n  ssh:\n    prot: 2022\n"))


def test_a_password_never_shows_in_the_profile_or_its_dump(tmp_path: Path) -> None:
    rig = load_rig(_rig(tmp_path, "os: generic\ncredentials:\n  password: hunter2-secret\n"))
    assert "hunter2-secret" not in repr(rig.profile)
    assert "hunter2-secret" not in rig.profile.model_dump_json()
    out = subprocess.run(
        [sys.executable, "-m", "hil", "os", "show", str(tmp_path / "rig.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "hunter2-secret" not in out.stdout and MASK in out.stdout


def test_generic_without_credentials_says_hil_has_no_way_in() -> None:
    assert "gives hil no way in" in (get_profile("generic").way_in() or "")
    assert get_profile("reference").way_in() is None
