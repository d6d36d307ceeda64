"""The layout's rules that import-linter cannot state: an import inside a function hides what a module
depends on, so each one says why it is there (start-up speed is the only reason kept); and a module stays
within 400 lines and a function within 60, unless a comment says why it is longer."""

from __future__ import annotations

import ast
import re
import tokenize
from pathlib import Path

HIL = Path(__file__).resolve().parents[2] / "hil"
REASON = "start-up speed"
MODULE_LINES, FUNCTION_LINES = 400, 60
# The comment that lets a module or a function be longer: "longer because" and the reason.
WHY_LONGER = re.compile(r"longer because\W+\w", re.IGNORECASE)
# Modules over the bound that are being split right now, relative to hil/. An entry goes when its split
# lands (test_each_known_long_module_is_still_long says when).
BEING_SPLIT = {
    "drivers/qemu/board.py",  # being split by the flasher work
}


def function_level_imports(path: Path) -> list[int]:
    """Line numbers of the imports inside functions of a module."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines += [sub.lineno for sub in ast.walk(node) if isinstance(sub, ast.Import | ast.ImportFrom)]
    return lines


def unexplained(path: Path) -> list[str]:
    """Function-level imports with no word on why: on the line, in the two lines above, or for the module."""
    text = path.read_text().splitlines()
    if any(line.startswith("# ") and REASON in line.lower() for line in text):
        return []
    return [
        f"{path}:{n}: {text[n - 1].strip()}"
        for n in function_level_imports(path)
        if not any(REASON in text[i].lower() for i in range(max(n - 3, 0), n))
    ]


def test_every_import_inside_a_function_says_it_is_for_start_up_speed() -> None:
    found = [line for path in sorted(HIL.rglob("*.py")) for line in unexplained(path)]
    assert not found, "imports inside functions hide dependencies; move them up or say why:\n" + "\n".join(
        found
    )


def test_the_rule_sees_an_unexplained_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\n\ndef f():\n    import json\n    return json\n")
    assert unexplained(module) == [f"{module}:5: import json"]
    module.write_text("def f():\n    # at call time, for start-up speed\n    import json\n    return json\n")
    assert unexplained(module) == []


def comments(path: Path) -> dict[int, tuple[int, str]]:
    """The comments of a module (not strings that look like one): line -> (column, text)."""
    with path.open("rb") as f:
        return {
            tok.start[0]: (tok.start[1], tok.string)
            for tok in tokenize.tokenize(f.readline)
            if tok.type == tokenize.COMMENT
        }


def says_why(path: Path) -> dict[int, int]:
    """The comments that say why something is longer: line -> column."""
    return {line: column for line, (column, text) in comments(path).items() if WHY_LONGER.search(text)}


def long_module(path: Path) -> list[str]:
    """The module, when it is over MODULE_LINES and no comment at its left margin says why."""
    lines = len(path.read_text().splitlines())
    if lines <= MODULE_LINES or 0 in says_why(path).values():
        return []
    return [f"{path}: {lines} lines (at most {MODULE_LINES})"]


def long_functions(path: Path) -> list[str]:
    """Functions over FUNCTION_LINES (their `def` to their last line) with no comment saying why, in them
    or in the comment lines right above them (or above their decorators)."""
    text = path.read_text()
    source, why, found = text.splitlines(), says_why(path), []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.end_lineno is None:
            continue
        length = node.end_lineno - node.lineno + 1
        top = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        while top > 1 and source[top - 2].lstrip().startswith("#"):
            top -= 1
        if length > FUNCTION_LINES and not any(top <= line <= node.end_lineno for line in why):
            found.append(f"{path}:{node.lineno}: {node.name}() is {length} lines (at most {FUNCTION_LINES})")
    return found


def test_no_module_over_400_lines_and_no_function_over_60_unless_a_comment_says_why() -> None:
    found = [
        problem
        for path in sorted(HIL.rglob("*.py"))
        for problem in (
            long_functions(path)
            if path.relative_to(HIL).as_posix() in BEING_SPLIT
            else [*long_module(path), *long_functions(path)]
        )
    ]
    assert not found, (
        'split these into well-named parts, or say in a comment why one is longer ("longer because ..."):\n'
        + "\n".join(found)
    )


def test_each_module_being_split_is_still_long() -> None:
    done = [name for name in sorted(BEING_SPLIT) if not long_module(HIL / name)]
    assert not done, (
        f"within {MODULE_LINES} lines now (or exempt by a comment): take out of BEING_SPLIT: {done}"
    )


def test_the_rule_sees_a_long_function_and_a_long_module(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n" + "".join(f"    x{i} = {i}\n" for i in range(60)))
    assert long_functions(module) == [f"{module}:1: f() is 61 lines (at most 60)"]
    module.write_text("def f():\n" + "".join(f"    x{i} = {i}\n" for i in range(59)))
    assert long_functions(module) == []
    module.write_text("x = 1\n" * 401)
    assert long_module(module) == [f"{module}: 401 lines (at most 400)"]
    module.write_text("x = 1\n" * 400)
    assert long_module(module) == []


def test_a_comment_saying_why_lets_a_function_or_a_module_be_longer(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    module.write_text(f"# The table is longer because each row is a rig kind.\n@decorated\ndef f():\n{body}")
    assert long_functions(module) == []
    module.write_text(f"def f():\n    # longer because: one step per state, in order\n{body}")
    assert long_functions(module) == []
    module.write_text(f'def f():\n    """# longer because a string is not a comment"""\n{body}')
    assert long_functions(module) == [f"{module}:1: f() is 62 lines (at most 60)"]
    module.write_text("# This module is longer because it is one table.\n" + "x = 1\n" * 401)
    assert long_module(module) == []
    indented = "def f():\n    # longer because it is one table\n    pass\n"
    module.write_text(indented + "x = 1\n" * 401)
    assert long_module(module) == [f"{module}: 404 lines (at most 400)"]
