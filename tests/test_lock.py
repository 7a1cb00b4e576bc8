"""requirements.lock pins every declared dependency inside its declared range."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "scripts" / "check_lock.py"


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), str(root)], capture_output=True, text=True, check=False)


def test_the_lock_agrees_with_pyproject() -> None:
    result = _check(ROOT)
    assert result.returncode == 0, result.stderr


def test_a_disagreement_fails_with_a_line_per_package(tmp_path: Path) -> None:
    shutil.copy(ROOT / "requirements.lock", tmp_path / "requirements.lock")
    pyproject = (ROOT / "pyproject.toml").read_text()
    pyproject = pyproject.replace('"openai>=1.50"', '"openai<1.50"')
    pyproject = pyproject.replace('"ruff>=0.6"', '"ruff>=0.6", "left-pad>=1"')
    (tmp_path / "pyproject.toml").write_text(pyproject)
    result = _check(tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any(line.startswith("lock: openai==") and "does not satisfy 'openai<1.50'" in line for line in lines)
    assert "lock: left-pad is declared in pyproject.toml but not pinned in requirements.lock; run scripts/lock.sh" \
        in lines
    assert len(lines) == 2
