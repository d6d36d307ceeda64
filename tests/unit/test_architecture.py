"""The layout's rules that import-linter cannot state: an import inside a function hides what a module
depends on, so each one says why it is there (start-up speed is the only reason kept)."""

from __future__ import annotations

import ast
from pathlib import Path

HIL = Path(__file__).resolve().parents[2] / "hil"
REASON = "start-up speed"


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
