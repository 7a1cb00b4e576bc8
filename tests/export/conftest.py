from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_models import BUILDERS


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """tiny_source(family) -> folder of a tiny random HF model, built once per session."""
    pytest.importorskip("torch")
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = BUILDERS[family](tmp_path_factory.mktemp(family) / "src")
        return built[family]

    return get
