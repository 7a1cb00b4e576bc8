"""The benchmark scripts are a package run as ``python -m benchmarks.<name>``; the tests never import it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py")
                 if p.stem not in ("__init__", "harness", "flops"))


def test_the_benchmarks_are_all_listed_in_their_readme() -> None:
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    missing = [name for name in SCRIPTS if f"python -m benchmarks.{name}" not in readme]
    assert not missing, f"benchmarks/README.md gives no `python -m benchmarks.<name>` command for {missing}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_benchmark_runs_as_a_module(name: str) -> None:
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_no_benchmark_edits_sys_path() -> None:
    offenders = [p.name for p in (ROOT / "benchmarks").glob("*.py") if "sys.path" in p.read_text()]
    assert not offenders


def test_tests_never_import_the_benchmarks() -> None:
    offenders = []
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "benchmarks" or n.startswith("benchmarks.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"tests import benchmark scripts (use tests/support/): {offenders}"
