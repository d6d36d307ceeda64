"""Shell snippets in OS profiles: plain commands, and templates whose `{{name}}` placeholders are quoted.

A profile is user-written data, and the values put into its snippets (a bundle path, a DNS name, a URL)
come from tests. A template therefore names the placeholders it may use, refuses any other when the
profile is loaded, and substitutes each value with `shlex.quote`, so a value is always one shell word.
A placeholder must stand where a shell word can (not inside single quotes). `{{` is the marker because
single braces are everywhere in shell and awk.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}")


@dataclass(frozen=True)
class ShellTemplate:
    """A shell command with `{{name}}` placeholders, each substituted as one quoted shell word."""

    text: str
    allowed: frozenset[str]

    @property
    def used(self) -> frozenset[str]:
        """The placeholders the text uses."""
        return frozenset(_PLACEHOLDER.findall(self.text))

    def render(self, **values: object) -> str:
        """The command with every placeholder replaced by its quoted value."""
        missing = self.used - values.keys()
        if missing:
            raise KeyError(f"no value for {', '.join(sorted(missing))} in `{self.text}`")
        return _PLACEHOLDER.sub(lambda m: shlex.quote(str(values[m.group(1)])), self.text)

    def fill(self, **values: object) -> str:
        """The text with every placeholder replaced by its value as it is: for data, never for a shell."""
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.text)

    def __str__(self) -> str:
        return self.text


def _template_parser(allowed: frozenset[str]) -> Any:
    def parse(value: object) -> ShellTemplate:
        if isinstance(value, ShellTemplate):
            value = value.text
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a shell command (a non-empty string) is expected")
        unknown = sorted(set(_PLACEHOLDER.findall(value)) - allowed)
        if unknown:
            known = ", ".join("{{" + n + "}}" for n in sorted(allowed)) or "none"
            raise ValueError(f"unknown placeholder {{{{{unknown[0]}}}}}; this command takes {known}")
        return ShellTemplate(value, allowed)

    return parse


def template(*names: str) -> Any:
    """The annotated type of a shell template that may use the placeholders `names`."""
    return Annotated[
        ShellTemplate, BeforeValidator(_template_parser(frozenset(names))), PlainSerializer(lambda t: t.text)
    ]


def _plain(value: str) -> str:
    if not value.strip():
        raise ValueError("a shell command (a non-empty string) is expected")
    if _PLACEHOLDER.search(value):
        raise ValueError("this command takes no {{placeholders}}")
    return value


# A shell command that takes no values: a plain string, refused if it contains a placeholder.
Command = Annotated[str, AfterValidator(_plain)]


def _regex(value: str) -> str:
    try:
        re.compile(value, re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


# A regular expression matched against console or log text (checked to compile when loaded).
Regex = Annotated[str, AfterValidator(_regex)]
