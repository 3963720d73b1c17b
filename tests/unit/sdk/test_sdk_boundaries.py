"""The import rules: the SDK never imports the runtime; backends import only the SDK and
numpy (and the standard library)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", sources("packflow"), ids=lambda p: p.name)
def test_sdk_imports_nothing_from_the_runtime(path: Path) -> None:
    assert "consumer" not in imported_roots(path)


@pytest.mark.parametrize("path", sources("backends"), ids=lambda p: str(p.relative_to(REPO)))
def test_backends_import_only_the_sdk_and_numpy(path: Path) -> None:
    allowed = {"packflow", "numpy", "backends", "__future__"} | set(sys.stdlib_module_names)
    assert imported_roots(path) <= allowed
