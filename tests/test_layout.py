"""The layout rules of the README that a scan of the source can check: core never imports the
app or Qt, and never prints (it is a library; the CLI and GUI say things)."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"
FORBIDDEN = ("qc_app", "PySide6", "pyqtgraph", "PyQt5", "PyQt6")


def _modules():
    for path in sorted(CORE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_core_imports_neither_the_app_nor_qt():
    offenders = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(CORE.parent)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_core_does_not_print():
    offenders = [f"{path.relative_to(CORE.parent)}:{node.lineno}" for path, tree in _modules()
                 for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert not offenders, offenders
