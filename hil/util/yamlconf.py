"""Load user-written YAML into a pydantic model, with errors that name the file, line and field.

Config files are small and plain, so the reader refuses what they never need and what would make reading
unbounded or ambiguous: anchors and aliases (a few hundred bytes can expand to gigabytes, or loop), tags
beyond the plain scalar types, repeated or non-scalar keys, more than MAX_BYTES, nesting past MAX_DEPTH.
The data is built from the parser's events with an explicit stack, so no input can exhaust the recursion.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from hil.errors import HilError

T = TypeVar("T")

MAX_BYTES = 1 << 20
MAX_DEPTH = 64

Key = tuple[Any, ...]
# Where a key path was written: a line of the file being validated, or (file, line) for a value that
# came from another file (a profile that extends another).
Line = int | tuple[Path, int]

# libyaml's parser is about 20 times faster than PyYAML's own; both give the same events.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_CORE + t for t in ("null", "bool", "int", "float", "str", "timestamp"))
_COLLECTION_TAGS = {yaml.MappingStartEvent: _CORE + "map", yaml.SequenceStartEvent: _CORE + "seq"}
_NO_KEY = object()


def read_yaml(path: Path, error: type[HilError]) -> tuple[Any, dict[Key, int]]:
    """Parse a YAML file into plain data plus a map from key path to line number."""
    return _Builder(_read_text(path, error), path, error).read()


def validate(model: Any, data: Any, lines: Mapping[Key, Line], path: Path, error: type[HilError]) -> Any:
    """Validate data against a model or annotated type; the first error names file:line: field: problem."""
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        raise error(describe(exc, lines, path, model)) from None


def describe(exc: ValidationError, lines: Mapping[Key, Line], path: Path, model: Any = None) -> str:
    """One line for the first validation error, located in the file (give the model for exact fields)."""
    err = exc.errors()[0]
    ctx = err.get("ctx", {})
    schema = TypeAdapter(model).core_schema if model is not None else None
    loc = _user_path(schema, tuple(err["loc"]), (), lines, {})
    if err["type"].startswith("union_tag"):
        loc = (*loc, ctx["discriminator"].strip("'"))
    message = {
        "extra_forbidden": "unknown field",
        "missing": "required field is missing",
        "union_tag_not_found": "required field is missing",
        "union_tag_invalid": f"{_clip(repr(ctx.get('tag')))} is not one of {ctx.get('expected_tags')}",
    }.get(err["type"], err["msg"])
    file, line = _locate(loc, lines, path)
    return f"{file}:{line}: {_field(loc)}: {' '.join(message.split())}"


def load(model: type[T], path: Path, error: type[HilError]) -> T:
    """Read and validate a YAML file in one step."""
    data, lines = read_yaml(path, error)
    return validate(model, data, lines, path, error)


def _read_text(path: Path, error: type[HilError]) -> str:
    """The file's text: a regular file of at most MAX_BYTES, UTF-8, with only characters YAML allows."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise error(f"{path}: not a regular file")  # a directory; a FIFO would block the read
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise error(f"{path}: larger than {MAX_BYTES // 1024} KiB; a config file is a few lines of YAML")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None
    bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        char = f"U+{ord(bad.group()):04X}"
        raise error(f"{path}:{line}: not valid YAML: character {char} is not allowed (a binary file?)")
    return text


@dataclass
class _Open:
    """A mapping or list being read: its key path, and in a mapping the key whose value comes next."""

    at: Key
    value: dict[Any, Any] | list[Any]
    key: Any = _NO_KEY


class _Builder:
    """Plain data from parser events, recording the line of every key path and refusing as it reads."""

    def __init__(self, text: str, path: Path, error: type[HilError]) -> None:
        self.loader = _LOADER(text)
        self.path, self.error = path, error
        self.lines: dict[Key, int] = {(): 1}
        self.open: list[_Open] = []
        self.root: Any = {}  # an empty file is an empty mapping
        self.documents = 0

    def read(self) -> tuple[Any, dict[Key, int]]:
        try:
            while not isinstance(event := self.loader.get_event(), yaml.StreamEndEvent):
                self._take(event)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{self.path}:{mark.line + 1}" if mark else str(self.path)
            problem = next((p for a in ("problem", "context", "reason") if (p := getattr(exc, a, None))), exc)
            raise self.error(f"{where}: not valid YAML: {' '.join(str(problem).split())}") from None
        finally:
            self.loader.dispose()
        return self.root, self.lines

    def _take(self, event: yaml.Event) -> None:
        assert event.start_mark is not None  # the parser marks every event with where it starts
        line = event.start_mark.line + 1
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.error(f"{self.path}:{line}: a config file holds one YAML document")
        elif isinstance(event, yaml.CollectionEndEvent):
            self._attach(self.open.pop().value)
        elif isinstance(event, yaml.NodeEvent):
            self._node(event, line)

    def _node(self, event: yaml.NodeEvent, line: int) -> None:
        """A scalar or the start of a collection: a key of the mapping being read, or a value."""
        parent = self.open[-1] if self.open else None
        if parent is not None and isinstance(parent.value, dict) and parent.key is _NO_KEY:
            self._key(event, parent, line)
            return
        if parent is None:
            at: Key = ()
        elif isinstance(parent.value, list):
            at = (*parent.at, len(parent.value))
            self.lines[at] = line
        else:
            at = (*parent.at, parent.key)
        self._no_anchor(event, at, line)
        if isinstance(event, yaml.ScalarEvent):
            self._attach(self._scalar(event, at, line))
            return
        assert isinstance(event, yaml.CollectionStartEvent)  # an alias was refused by _no_anchor
        tag = event.tag
        if tag not in (None, "!", _COLLECTION_TAGS[type(event)]):
            self._refuse(line, at, f"the tag {_short(tag)} is not allowed")
        if len(self.open) >= MAX_DEPTH:
            self._refuse(line, at, f"nested more than {MAX_DEPTH} levels deep")
        self.open.append(_Open(at, {} if isinstance(event, yaml.MappingStartEvent) else []))

    def _key(self, event: yaml.NodeEvent, parent: _Open, line: int) -> None:
        if not isinstance(event, yaml.ScalarEvent):
            self._no_anchor(event, parent.at, line)
            self._refuse(line, parent.at, "a key must be a plain value, not a mapping or a list")
        self._no_anchor(event, (*parent.at, event.value), line)
        key = self._scalar(event, (*parent.at, event.value), line)
        first = self.lines.get((*parent.at, key))
        if first is not None:
            self._refuse(line, (*parent.at, key), f"duplicate key (first at line {first})")
        self.lines[(*parent.at, key)] = line
        parent.key = key

    def _no_anchor(self, event: yaml.NodeEvent, at: Key, line: int) -> None:
        if event.anchor is not None:  # an alias event's anchor is the name it refers to
            self._refuse(line, at, "anchors and aliases (&name, *name) are not allowed")

    def _scalar(self, event: yaml.ScalarEvent, at: Key, line: int) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag not in _SCALAR_TAGS:
            self._refuse(line, at, f"the tag {_short(tag)} is not allowed")
        # libyaml's events carry its own Mark class, which the stubs keep apart from yaml.error.Mark.
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)  # type: ignore[arg-type]
        try:
            return self.loader.construct_object(node)
        except Exception:  # any failure of the tag's own constructor means the text is not of that type
            self._refuse(line, at, f"{_clip(repr(event.value))} is not a valid {_short(tag)}")

    def _attach(self, value: Any) -> None:
        if not self.open:
            self.root = value
            return
        parent = self.open[-1]
        if isinstance(parent.value, list):
            parent.value.append(value)
        else:
            parent.value[parent.key] = value
            parent.key = _NO_KEY

    def _refuse(self, line: int, at: Key, problem: str) -> NoReturn:
        raise self.error(f"{self.path}:{line}: {_field(at)}: {problem}")


# Core schema types that wrap another schema without adding to an error's location.
_WRAPPERS = frozenset(
    {
        "default",
        "nullable",
        "model",
        "dataclass",
        "definitions",
        "function-after",
        "function-before",
        "function-wrap",
    }
)


def _user_path(schema: Any, loc: Key, at: Key, lines: Mapping[Key, Line], refs: dict[str, Any]) -> Key:
    """The error location as the user wrote it: without the union tags and choice labels pydantic adds.

    The schema is walked beside the location because a tag can equal a key (a `kind: qemu` rig has a
    `qemu:` field) and only the schema says which one a part is. Where the schema is not understood, a
    part is a key when the file has it, or when it is the last (a missing field).
    """
    if not loc:
        return at
    schema = _unwrap(schema, refs)
    kind = schema["type"] if schema is not None else None
    part, rest = loc[0], loc[1:]
    if kind == "tagged-union":
        return _user_path(schema["choices"].get(part), rest, at, lines, refs)
    if kind == "union":  # a label naming the choice that failed: the data is still where it was
        return _user_path(None, rest, at, lines, refs)
    if kind == "dict" and rest[:1] == ("[key]",):
        return (*at, part)  # the key itself is wrong
    if schema is None and (*at, part) not in lines and rest:
        return _user_path(None, rest, at, lines, refs)
    return _user_path(_child(schema, part), rest, (*at, part), lines, refs)


def _unwrap(schema: Any, refs: dict[str, Any]) -> Any:
    while schema is not None:
        if schema["type"] == "definitions":
            refs.update((d["ref"], d) for d in schema["definitions"])
        elif schema["type"] == "definition-ref":
            schema = refs.get(schema["schema_ref"])
            continue
        elif schema["type"] not in _WRAPPERS:
            return schema
        schema = schema.get("schema")
    return None


def _child(schema: Any, part: Any) -> Any:
    """The schema of a field, item or value of `schema`, or None where it is not known."""
    kind = schema["type"] if schema is not None else None
    if kind in ("model-fields", "typed-dict"):
        field = schema["fields"].get(part)
        return field["schema"] if field else schema.get("extras_schema")
    if kind in ("list", "set", "frozenset"):
        return schema.get("items_schema")
    if kind == "dict":
        return schema.get("values_schema")
    return None


def _locate(loc: Key, lines: Mapping[Key, Line], path: Path) -> tuple[Path, int]:
    """The file and line of the longest prefix of `loc` that was written somewhere."""
    for n in range(len(loc), -1, -1):
        line = lines.get(loc[:n])
        if line is not None:
            return line if isinstance(line, tuple) else (path, line)
    return path, 1


def _field(at: Key) -> str:
    """A key path as `qemu.memory`, on one line: odd keys (empty, not text) quoted, long ones cut."""

    def part(p: Any) -> str:
        plain = isinstance(p, str | int) and str(p).isprintable() and str(p) != ""
        return _clip(str(p) if plain else repr(p))

    return ".".join(part(p) for p in at) or "(top level)"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _short(tag: str) -> str:
    return tag.replace(_CORE, "!!", 1)
