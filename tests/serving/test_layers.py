"""Layering rules of ovembed.serving that docs/architecture.md states, checked on the source (imports at any
level, TYPE_CHECKING blocks included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVING = Path(__file__).resolve().parents[2] / "ovembed" / "serving"


def _serving_imports(path: Path) -> set[str]:
    """The ovembed.serving modules ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("ovembed.serving")}


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_api_imports_no_serving_module() -> None:
    """serving/api.py is the contract: protocols and value types, importing no implementation."""
    assert _serving_imports(SERVING / "api.py") == set()


@pytest.mark.parametrize("path", sorted((SERVING / "wire").glob("*.py")), ids=lambda p: p.name)
def test_wire_imports_only_the_api_and_use_cases_from_serving(path: Path) -> None:
    """A wire format parses into use-case requests and renders their results with the API's value types; it
    knows no task, batcher, executor, registry or transport."""
    allowed = ("ovembed.serving.api", "ovembed.serving.usecases", "ovembed.serving.wire")
    bad = {n for n in _serving_imports(path) if not _allowed(n, allowed)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sorted((SERVING / "usecases").glob("*.py")), ids=lambda p: p.name)
def test_usecases_import_only_the_api_and_the_context(path: Path) -> None:
    allowed = ("ovembed.serving.api", "ovembed.serving.context", "ovembed.serving.usecases")
    bad = {n for n in _serving_imports(path) if not _allowed(n, allowed)}
    assert not bad, f"{path.name} imports {sorted(bad)}"
