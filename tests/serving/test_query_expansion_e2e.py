"""Query expansion (sentence-transformers 6 ``query_expansion``, attend=true): the tiny ColBERT-style model of
test_token_embed_e2e with ``{"strategy": "fixed", "attend": true, "length": 16}`` on its Transformer, exported
with --task token_embed and served in process: query vectors (padded with [MASK] to 16 tokens, or cut to 16)
against MultiVectorEncoder.encode_query, documents unchanged, MaxSim rerank; attend=false is refused at export."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.serving.http.app import create_app
from tests.serving.test_token_embed_e2e import DOCS, QUERY, build_colbert

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]
LENGTH = 16
LONG_QUERY = " ".join(["what is the capital of france and why"] * 4)


def _with_expansion(folder: Path, expansion: dict[str, Any]) -> None:
    config_path = folder / "sentence_bert_config.json"
    config = json.loads(config_path.read_text())
    config["query_expansion"] = expansion
    config_path.write_text(json.dumps(config))


@pytest.fixture(scope="module")
def colbert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    import torch
    from sentence_transformers import MultiVectorEncoder

    torch.manual_seed(5)
    source = build_colbert(tmp_path_factory.mktemp("colbert-qe") / "colbert")
    _with_expansion(source, {"strategy": "fixed", "attend": True, "length": LENGTH})
    return source, MultiVectorEncoder(str(source), device="cpu")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, colbert: tuple[Path, Any]) -> Path:
    from ovembed.config import ExportConfig, Task, WeightFormat
    from ovembed.export.pipeline import export_model

    root = tmp_path_factory.mktemp("colbert-qe-repo")
    export_model(ExportConfig(source_model=str(colbert[0]), model_name="colbert", model_repository_path=root,
                              task=Task.TOKEN_EMBED, weight_format=WeightFormat.FP32))
    return root


@pytest.fixture(scope="module")
def client(repo: Path) -> Iterator[TestClient]:
    cfg = ServeConfig(config_path=repo / "config.json", file_system_poll_wait_seconds=0)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 300
        while c.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield c


def _reference(encoder: Any, texts: list[str], kind: str) -> list[np.ndarray]:
    encode = encoder.encode_query if kind == "query" else encoder.encode_document
    return [np.asarray(v, dtype=np.float32) for v in encode(texts, convert_to_numpy=True)]


def _min_cosine(ref: np.ndarray, got: np.ndarray) -> float:
    assert ref.shape == got.shape, (ref.shape, got.shape)
    return float(((ref * got).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(got, axis=-1))).min())


def test_record(repo: Path, colbert: tuple[Path, Any]) -> None:
    section = json.loads((repo / "colbert" / "ovembed_model.json").read_text())["token_embed"]
    mask_id = colbert[1].tokenizer.mask_token_id
    assert section["query_expansion"] == {"strategy": "fixed", "length": LENGTH, "token_id": mask_id}


def test_queries_expanded_as_the_reference(client: TestClient, colbert: tuple[Path, Any]) -> None:
    encoder = colbert[1]
    queries = [QUERY, LONG_QUERY]
    resp = client.post("/embed_all", json={"inputs": queries, "input_type": "query"})
    assert resp.status_code == 200, resp.text
    for got, ref in zip(resp.json(), _reference(encoder, queries, "query"), strict=True):
        assert len(got) == LENGTH  # padded with [MASK] up to 16, or cut to 16
        assert _min_cosine(ref, np.array(got, dtype=np.float32)) >= 0.9999
    docs = client.post("/embed_all", json={"inputs": DOCS}).json()  # documents are not expanded
    for got, ref in zip(docs, _reference(encoder, DOCS, "document"), strict=True):
        assert _min_cosine(ref, np.array(got, dtype=np.float32)) >= 0.9999


def test_rerank_uses_the_expanded_query(client: TestClient, colbert: tuple[Path, Any]) -> None:
    encoder = colbert[1]
    q = _reference(encoder, [QUERY], "query")[0]
    want = np.array([(q @ d.T).max(axis=1).sum() for d in _reference(encoder, DOCS, "document")])
    results = client.post("/v3/rerank", json={"model": "colbert", "query": QUERY, "documents": DOCS}).json()
    got = np.array([r["relevance_score"] for r in sorted(results["results"], key=lambda r: r["index"])])
    assert np.abs(got - want).max() < 1e-4, (got, want)


def test_attend_false_is_refused(colbert: tuple[Path, Any], tmp_path: Path) -> None:
    import shutil

    from ovembed.errors import ExportError
    from ovembed.export.token_embed import read_token_model

    source = tmp_path / "colbert"
    shutil.copytree(colbert[0], source)
    _with_expansion(source, {"strategy": "fixed", "attend": False, "length": LENGTH})
    with pytest.raises(ExportError, match="attend=false"):
        read_token_model(source)
