"""Serving imports no torch / transformers / optimum / NNCF / sentence-transformers."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "optimum", "nncf", "sentence_transformers")

_SCRIPT = """
import json, sys
import ovembed.serving
import ovembed.serving.http.app
import ovembed.serving.http.server
from starlette.testclient import TestClient
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

with TestClient(make_app(FakeRegistry(FakeServable("fake")))) as client:
    status = client.post("/v3/embeddings", json={"model": "fake", "input": "x"}).status_code
if ENGINE:
    import ovembed.serving.models.registry
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print(json.dumps({"status": status, "heavy": heavy}))
"""


def _run(engine: bool) -> dict[str, object]:
    script = f"ENGINE = {engine!r}\nHEAVY = {HEAVY!r}\n{_SCRIPT}"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_app_and_server_import_nothing_heavy() -> None:
    result = _run(engine=False)
    assert result == {"status": 200, "heavy": []}


def test_engine_registry_imports_nothing_heavy() -> None:
    if importlib.util.find_spec("ovembed.serving.models.registry") is None:
        import pytest

        pytest.skip("ovembed.serving.models.registry (the engine) does not exist yet")
    result = _run(engine=True)
    assert result["heavy"] == []
