"""The YAML config loader: plain YAML in, bounded work, and every mistake one line naming file:line: field."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from hil.errors import RigConfigError
from hil.lab.pool import pools
from hil.lab.rig import load_rig
from hil.release.policy import load_policy
from hil.util import yamlconf

pytestmark = pytest.mark.timeout(60)


def _file(tmp_path: Path, content: str | bytes, name: str = "conf.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def _read(tmp_path: Path, content: str | bytes) -> tuple[Any, dict[tuple[Any, ...], int]]:
    return yamlconf.read_yaml(_file(tmp_path, content), RigConfigError)


def _refusal(tmp_path: Path, content: str | bytes) -> str:
    with pytest.raises(RigConfigError) as info:
        _read(tmp_path, content)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(params=["libyaml", "pure-python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with libyaml's parser and with PyYAML's own, the fallback where libyaml is missing."""
    if request.param == "pure-python":
        monkeypatch.setattr(yamlconf, "_LOADER", yaml.SafeLoader)
    return request.param


def test_data_comes_with_the_line_of_every_key_and_list_item(tmp_path: Path, parser: str) -> None:
    data, lines = _read(tmp_path, "a: 1\nb:\n  - x\n  -\n    c: true\n  - [y, {d: ~}]\n")
    assert data == {"a": 1, "b": ["x", {"c": True}, ["y", {"d": None}]]}
    assert lines[("b",)] == 2
    assert (lines[("b", 0)], lines[("b", 1, "c")], lines[("b", 2)], lines[("b", 2, 1, "d")]) == (3, 5, 6, 6)


def test_an_empty_value_is_null(tmp_path: Path, parser: str) -> None:
    assert _read(tmp_path, "pool:\nos: reference\n")[0] == {"pool": None, "os": "reference"}


def test_an_empty_file_is_an_empty_mapping(tmp_path: Path, parser: str) -> None:
    assert _read(tmp_path, "# nothing yet\n")[0] == {}


@pytest.mark.timeout(10)
def test_nested_aliases_are_refused_before_they_expand(tmp_path: Path, parser: str) -> None:
    laughs = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    message = _refusal(tmp_path, "\n".join(laughs) + "\n")
    assert message == f"{tmp_path / 'conf.yaml'}:1: a0: anchors and aliases (&name, *name) are not allowed"


@pytest.mark.timeout(10)
def test_a_recursive_alias_is_refused(tmp_path: Path, parser: str) -> None:
    assert _refusal(tmp_path, "kind: qemu\nloop: &me [*me]\n").endswith(
        ":2: loop: anchors and aliases (&name, *name) are not allowed"
    )


def test_a_duplicate_key_is_refused_at_its_second_line(tmp_path: Path, parser: str) -> None:
    message = _refusal(tmp_path, "qemu:\n  memory: 256\n  cpus: 1\n  memory: 512\n")
    assert message == f"{tmp_path / 'conf.yaml'}:4: qemu.memory: duplicate key (first at line 2)"


def test_keys_that_yaml_reads_as_equal_are_duplicates(tmp_path: Path, parser: str) -> None:
    assert _refusal(tmp_path, "1: a\n0x1: b\n").endswith(":2: 1: duplicate key (first at line 1)")


def test_a_mapping_or_list_as_a_key_is_refused(tmp_path: Path, parser: str) -> None:
    message = _refusal(tmp_path, "suites:\n  ? [a, b]\n  : 1\n")
    assert message.endswith(":2: suites: a key must be a plain value, not a mapping or a list")
    assert _refusal(tmp_path, "{a: 1}: x\n").endswith(
        ":1: (top level): a key must be a plain value, not a mapping or a list"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "kind: !!python/object/apply:os.system ['true']\n",
            "kind: the tag !!python/object/apply:os.system is not allowed",
        ),
        ("kind: !!python/name:os.system x\n", "kind: the tag !!python/name:os.system is not allowed"),
        ("rigs: !!set {a, b}\n", "rigs: the tag !!set is not allowed"),
        ("kind: !qemu x\n", "kind: the tag !qemu is not allowed"),
        ("<<: {a: 1}\n", "<<: the tag !!merge is not allowed"),
        ("memory: !!binary aGVsbG8=\n", "memory: the tag !!binary is not allowed"),
    ],
)
def test_tags_config_files_never_need_are_refused(
    tmp_path: Path, parser: str, text: str, problem: str
) -> None:
    assert _refusal(tmp_path, text).endswith(f":1: {problem}")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("memory: !!int lots\n", "'lots' is not a valid !!int"),
        ("memory: 0x_\n", "'0x_' is not a valid !!int"),
        ("active_high: !!bool maybe\n", "'maybe' is not a valid !!bool"),
        ("rtc_base: 2020-13-45\n", "'2020-13-45' is not a valid !!timestamp"),
        ("rtc_base: !!timestamp soon\n", "'soon' is not a valid !!timestamp"),
        ("memory: " + "9" * 5000 + "\n", f"'{'9' * 56}... is not a valid !!int"),
    ],
)
def test_a_value_that_is_not_what_yaml_says_it_is_names_its_field(
    tmp_path: Path, parser: str, text: str, problem: str
) -> None:
    assert _refusal(tmp_path, text).endswith(f":1: {text.split(':')[0]}: {problem}")


def test_tagged_plain_values_read_as_their_tag(tmp_path: Path, parser: str) -> None:
    data = _read(tmp_path, "serial: !!str 0109\nmemory: !!int '512'\nrtc_base: '2020-01-01T00:00:00'\n")[0]
    assert data == {"serial": "0109", "memory": 512, "rtc_base": "2020-01-01T00:00:00"}


def test_nesting_deeper_than_the_bound_is_refused(tmp_path: Path, parser: str) -> None:
    depth = yamlconf.MAX_DEPTH
    assert _read(tmp_path, "[" * depth + "]" * depth)[0] is not None
    message = _refusal(tmp_path, "[" * (depth + 1) + "]" * (depth + 1))
    assert message.endswith(f":1: {'.'.join(['0'] * depth)}: nested more than {depth} levels deep")
    block = "".join(f"{'  ' * i}k:\n" for i in range(depth + 1))
    assert f":{depth + 1}: " in _refusal(tmp_path, block)


@pytest.mark.timeout(30)
def test_a_million_open_brackets_end_in_one_line(tmp_path: Path, parser: str) -> None:
    assert ":1: " in _refusal(tmp_path, "[" * (yamlconf.MAX_BYTES - 1))


def test_a_file_over_the_size_bound_is_refused_without_parsing_it(tmp_path: Path) -> None:
    assert _read(tmp_path, "a: " + "x" * (yamlconf.MAX_BYTES - 4) + "\n")[0]["a"].startswith("xxx")
    message = _refusal(tmp_path, "a: " + "x" * yamlconf.MAX_BYTES + "\n")
    assert message == f"{tmp_path / 'conf.yaml'}: larger than 1024 KiB; a config file is a few lines of YAML"


def test_a_binary_file_is_refused_at_its_first_control_character(tmp_path: Path, parser: str) -> None:
    message = _refusal(tmp_path, b"kind: qemu\n\x7fELF\x02\x01\x01\x00\x00")
    assert (
        message
        == f"{tmp_path / 'conf.yaml'}:2: not valid YAML: character U+007F is not allowed (a binary file?)"
    )


def test_a_file_that_is_not_utf8_is_refused_at_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    message = _refusal(tmp_path, b"kind: qemu\ndescription: bench \xe9t\xe9\n")
    assert message == f"{tmp_path / 'conf.yaml'}:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"


def test_a_second_document_is_refused(tmp_path: Path, parser: str) -> None:
    assert _refusal(tmp_path, "a: 1\n---\nb: 2\n").endswith(":2: a config file holds one YAML document")


def test_broken_yaml_is_one_line_with_its_line(tmp_path: Path, parser: str) -> None:
    assert ":3: not valid YAML: " in _refusal(tmp_path, "a: 1\nb: 'open\n")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rigs.yaml").mkdir()
    with pytest.raises(RigConfigError, match=r"^\S+/rigs\.yaml: not a regular file$"):
        yamlconf.read_yaml(tmp_path / "rigs.yaml", RigConfigError)


def test_an_unreadable_path_is_one_line(tmp_path: Path) -> None:
    too_long = tmp_path / ("r" * 300 + ".yaml")
    with pytest.raises(RigConfigError, match=r"r\.yaml: cannot read: File name too long$"):
        yamlconf.read_yaml(too_long, RigConfigError)
    with pytest.raises(RigConfigError, match=r"gone\.yaml: cannot read: No such file or directory$"):
        yamlconf.read_yaml(tmp_path / "gone.yaml", RigConfigError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_a_file_without_read_permission_is_one_line(tmp_path: Path) -> None:
    path = _file(tmp_path, "a: 1\n")
    path.chmod(0)
    with pytest.raises(RigConfigError, match=r"conf\.yaml: cannot read: Permission denied$"):
        yamlconf.read_yaml(path, RigConfigError)


# Where pydantic's location differs from the key path in the file: union tags, choice labels, dict keys.
class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: PositiveInt = 1


class _Cat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["cat"]
    name: str
    cat: _Spec = _Spec()
    pin: int | str = 0
    tags: list[_Spec] = []


class _Dog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["dog"]
    name: str


_Pet = Annotated[_Cat | _Dog, Field(discriminator="kind")]


def _located(tmp_path: Path, model: Any, text: str) -> str:
    path = _file(tmp_path, text)
    with pytest.raises(RigConfigError) as info:
        yamlconf.load(model, path, RigConfigError)
    return str(info.value).removeprefix(f"{path}:")


def test_a_field_named_like_its_union_tag_is_told_apart_from_the_tag(tmp_path: Path) -> None:
    assert (
        _located(tmp_path, _Pet, "kind: cat\ncat:\n  size: 1\nname: [x]\n")
        == "4: name: Input should be a valid string"
    )
    assert _located(tmp_path, _Pet, "kind: cat\ncat: {size: 0}\nname: x\n").startswith("2: cat.size: ")
    assert _located(tmp_path, _Pet, "kind: cat\ncat: {}\n") == "1: name: required field is missing"
    assert _located(tmp_path, _Pet, "kind: cat\nname: x\ncat:\n  sise: 2\n") == "4: cat.sise: unknown field"


def test_a_list_item_is_located_at_its_own_line(tmp_path: Path) -> None:
    text = "kind: cat\nname: x\ntags:\n  - size: 1\n  - size: 1\n    colour: red\n"
    assert _located(tmp_path, _Pet, text) == "6: tags.1.colour: unknown field"


def test_a_value_no_choice_of_a_plain_union_takes_is_located_without_the_choice_labels(
    tmp_path: Path,
) -> None:
    assert (
        _located(tmp_path, _Pet, "kind: cat\nname: x\npin: [17]\n")
        == "3: pin: Input should be a valid integer"
    )


def test_a_key_of_the_wrong_type_is_located_at_the_key(tmp_path: Path) -> None:
    located = _located(tmp_path, dict[str, _Spec], "a: {size: 1}\n7: {size: 1}\n")
    assert located == "2: 7: Input should be a valid string"


def test_a_wrong_or_missing_tag_names_the_tag_field(tmp_path: Path) -> None:
    assert _located(tmp_path, _Pet, "name: x\nkind: cow\n").startswith("2: kind: 'cow' is not one of")
    assert _located(tmp_path, _Pet, "name: x\n") == "1: kind: required field is missing"


def test_an_odd_key_is_shown_on_one_line(tmp_path: Path) -> None:
    located = _located(tmp_path, _Pet, 'kind: cat\nname: x\n"bad\\nkey": 1\n')
    assert located == "3: 'bad\\nkey': unknown field"


def test_a_line_may_point_into_another_file(tmp_path: Path) -> None:
    # As for a profile that extends base.yaml: `kind` and `cat` come from base.yaml, `name` from child.yaml.
    base, child = tmp_path / "base.yaml", tmp_path / "child.yaml"
    lines: dict[tuple[Any, ...], int | tuple[Path, int]] = {(): 1, ("kind",): (base, 1), ("name",): 2}
    lines |= {("cat",): (base, 3), ("cat", "size"): (base, 4)}

    def refusal(data: dict[str, Any], lines: dict[tuple[Any, ...], int | tuple[Path, int]]) -> str:
        with pytest.raises(RigConfigError) as info:
            yamlconf.validate(_Pet, data, lines, child, RigConfigError)
        return str(info.value)

    assert refusal({"kind": "cat", "name": "x", "cat": {"size": 0}}, lines) == (
        f"{base}:4: cat.size: Input should be greater than 0"
    )
    wrong = {"kind": "cat", "name": "x", "cat": {"size": 1, "sise": 2}}
    assert refusal(wrong, lines | {("cat", "sise"): 5}) == f"{child}:5: cat.sise: unknown field"
    assert refusal({"kind": "cat", "name": 5}, lines) == f"{child}:2: name: Input should be a valid string"
    assert (
        refusal({"kind": "cat", "name": "x", "cat": {"size": 1, "x": 1}}, lines)
        == f"{base}:3: cat.x: unknown field"
    )


# Hostile and random input, fed to every loader that reads a config file.
_FRAGMENTS = [
    "kind: qemu",
    "kind: autohat",
    "kind: twin",
    "device_type: qemux86-64",
    "qemu:",
    "memory: 5",
    "pool: bench",
    "rigs: [fuzz]",
    "device_types:",
    "suites:",
    "boot:",
    "min_tests: 1",
    "x",
    "&a ",
    "&b ",
    "*a",
    "*b",
    "<<: ",
    "? ",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "'",
    '"',
    "\\",
    "# c",
    "|",
    ">-",
    "---",
    "...",
    "%YAML 1.1",
    "%TAG !e! tag:e,2000:",
    "!e!x ",
    "!!python/object/apply:os.system ",
    "!!set ",
    "!!omap ",
    "!!binary ",
    "!!int ",
    "!!timestamp ",
    "!foo ",
    "! ",
    "~",
    "null",
    "0x_",
    "1e999",
    ".nan",
    "2020-13-45",
    "2020-01-01",
    "=",
    "yes",
    "0o17",
    "1:20",
    "\t",
    "\n",
    "\n",
    "  ",
    "\r",
    "\x00",
    "\x07",
    "\ufeff",
    "\x85",
    "\u2028",
    "é",
    "🦀",
    "9" * 5000,
]
_KEYS = st.sampled_from(["kind", "device_type", "qemu", "memory", "pool", "rigs", "device_types", "suites"])
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_TREES = st.recursive(
    _SCALARS | st.sampled_from(["qemu", "autohat", "twin", "qemux86-64", "fuzz"]),
    lambda kids: (
        st.lists(kids, max_size=4) | st.lists(st.tuples(_KEYS | st.text(max_size=4), kids), max_size=5)
    ),
    max_leaves=25,
)


def _flow(tree: Any) -> str:
    """YAML flow text for a tree whose mappings are lists of pairs, so keys may repeat."""
    if isinstance(tree, list) and all(isinstance(item, tuple) for item in tree) and tree:
        return "{" + ", ".join(f"{json.dumps(k)}: {_flow(v)}" for k, v in tree) + "}"
    if isinstance(tree, list):
        return "[" + ", ".join(_flow(item) for item in tree) + "]"
    return json.dumps(tree)


def _laughs(levels: int, fanout: int) -> str:
    text = "a0: &a0 lol\n"
    return text + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]\n" for i in range(1, levels))


_BOMBS = st.one_of(
    st.builds(_laughs, st.integers(1, 12), st.integers(1, 12)),
    st.integers(1, 200).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 120).map(lambda n: "".join(f"{'  ' * i}k:\n" for i in range(n))),
    st.sampled_from([100_000, yamlconf.MAX_BYTES - 12, yamlconf.MAX_BYTES + 1]).map(
        lambda n: "kind: " + "x" * n
    ),
)
_INPUTS = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map(lambda parts: "".join(parts).encode()),
    _TREES.map(lambda tree: _flow(tree).encode()),
    _BOMBS.map(str.encode),
)


def _ends_in_one_line_or_an_object(load: Any, names: Path | None = None) -> None:
    """`load()` gives an object, or a RigConfigError of one line (naming the file, when given)."""
    try:
        assert load() is not None
    except RigConfigError as exc:
        assert str(exc) and "\n" not in str(exc) and "\r" not in str(exc)
        assert names is None or str(exc).startswith(f"{names}")


@pytest.mark.timeout(240, method="thread")  # a hang ends the run: hypothesis would shrink on through a signal
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(content=_INPUTS)
def test_every_loader_ends_hostile_input_in_one_line_or_a_valid_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    rigs = tmp_path / "rigs"
    rigs.mkdir(exist_ok=True)
    monkeypatch.setenv("HIL_RIGS_DIR", str(rigs))
    (rigs / "pools.yaml").unlink(missing_ok=True)
    rig = _file(rigs, content, "fuzz.yaml")
    _ends_in_one_line_or_an_object(lambda: load_rig(rig), rig)
    _ends_in_one_line_or_an_object(pools)  # a bad rig file is skipped, so pools still load
    rig.unlink()
    _file(rigs, content, "pools.yaml")
    _ends_in_one_line_or_an_object(pools)
    gate = _file(tmp_path, content, "gate.yaml")
    _ends_in_one_line_or_an_object(lambda: load_policy(gate), gate)
