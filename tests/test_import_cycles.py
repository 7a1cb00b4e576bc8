"""No import cycles among ovembed's modules (imports at any level count), checked inside the project so a
contributor needs no tool from outside the repository (docs/architecture.md, Rules)."""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ovembed"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "_pb2" in path.name:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    out = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        # a package's __init__ importing its own submodules is its face, not a cycle
        if target and target != name and not (path.name == "__init__.py" and target.startswith(name + ".")) \
                and not (known[target].name == "__init__.py" and name.startswith(target + ".")):
            out.add(target)
    return out


def test_no_import_cycles() -> None:
    known = _modules()
    graph = {name: _imports(name, path, known) for name, path in known.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
