"""Load user-written YAML into a pydantic model, with errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from hil.errors import HilError

T = TypeVar("T")


def _construct(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> Any:
    """Build plain Python data from a YAML node, recording the line of every key path."""
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            items.append(_construct(item, (*path, i), lines))
        return items
    return yaml.safe_load(yaml.serialize(node))


def read_yaml(path: Path, error: type[HilError]) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse a YAML file into data plus a map from key path to line number."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise error(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    lines: dict[tuple[Any, ...], int] = {(): 1}
    if node is None:
        return {}, lines
    return _construct(node, (), lines), lines


def validate(
    model: Any, data: Any, lines: dict[tuple[Any, ...], int], path: Path, error: type[HilError]
) -> Any:
    """Validate data against a model or annotated type; the first error names file:line: field: problem."""
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        raise error(describe(exc, lines, path)) from None


def describe(exc: ValidationError, lines: dict[tuple[Any, ...], int], path: Path) -> str:
    """One line for the first validation error, located in the file."""
    err = exc.errors()[0]
    ctx = err.get("ctx", {})
    loc = _user_path(err["loc"], lines)
    if err["type"].startswith("union_tag"):
        loc = (*loc, ctx["discriminator"].strip("'"))
    message = {
        "extra_forbidden": "unknown field",
        "missing": "required field is missing",
        "union_tag_not_found": "required field is missing",
        "union_tag_invalid": f"{ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}",
    }.get(err["type"], err["msg"])
    line = next(lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines)
    field = ".".join(str(p) for p in loc) or "(top level)"
    return f"{path}:{line}: {field}: {message}"


def load(model: type[T], path: Path, error: type[HilError]) -> T:
    """Read and validate a YAML file in one step."""
    data, lines = read_yaml(path, error)
    return validate(model, data, lines, path, error)


def _user_path(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> tuple[Any, ...]:
    """The error location as the user wrote it: pydantic adds union tags that are no key in the file."""
    path: tuple[Any, ...] = ()
    for i, part in enumerate(loc):
        if (*path, part) in lines or i == len(loc) - 1:
            path = (*path, part)
    return path
