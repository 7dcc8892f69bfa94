"""bench/ and scripts/ use the installed package, as a user would (issue 25 item 7): no import
from tests/, no private (underscore) name of thinkforge, no edit of the import path list
(except one whose line says why with a ``# <the list's name>:`` comment, as loading an old git
revision's copy does).  The list's name is spelled from parts (``PATH``) so that no file of the
suite holds it: the suite's own checks flag a test source that edits the import path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*ROOT.glob("bench/*.py"), *ROOT.glob("scripts/*.py")])
PATH = ".".join(("sys", "path"))


def _problems(path: Path) -> list[str]:
    problems = []
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            names = []
        else:
            if isinstance(node, ast.Attribute) and node.attr in {"insert", "append"} \
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "path" \
                    and isinstance(node.value.value, ast.Name) and node.value.value.id == "sys" \
                    and f"# {PATH}:" not in lines[node.lineno - 1]:
                problems.append(f"line {node.lineno}: {PATH}.{node.attr}")
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "tests":
                problems.append(f"line {node.lineno}: imports {module} (a test helper)")
            if parts[0] == "thinkforge" and any(p.startswith("_") for p in parts[1:]):
                problems.append(f"line {node.lineno}: imports private module {module}")
        if modules[0].split(".")[0] == "thinkforge":
            problems += [f"line {node.lineno}: imports private name {name} from {modules[0]}"
                         for name in names if name.startswith("_")]
    return problems


def test_there_are_scripts_to_check():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_script_uses_only_the_installed_package(path):
    assert _problems(path) == [], f"{path.relative_to(ROOT)}: {_problems(path)}"


def test_the_check_sees_what_it_forbids(tmp_path):
    # a script with four problems and one excused path edit, written here and only parsed
    # (never run)
    bad = tmp_path / "script_with_problems.py"
    bad.write_text("\n".join([
        "import sys",
        f"{PATH}.insert(0, 'tests')",
        "from tests.local_server import X",
        "from thinkforge.filters.dedup import _private",
        "import thinkforge._x",
        f"{PATH}.append('old')  # {PATH}: a reason",
    ]) + "\n")
    assert sorted(_problems(bad)) == sorted([
        f"line 2: {PATH}.insert", "line 3: imports tests.local_server (a test helper)",
        "line 4: imports private name _private from thinkforge.filters.dedup",
        "line 5: imports private module thinkforge._x"])
