"""A tiny random ColBERT-style model (sentence-transformers' MultiVectorEncoder: BERT -> Dense to 16 -> Normalize
-> MultiVectorMask with the punctuation skiplist; [Q]/[D] marker prompts), built offline and seeded, exported
fp32 with --task token_embed and served in process: /embed_all per token against MultiVectorEncoder's
encode_query/encode_document, and /v3/rerank (MaxSim) against the formula over the reference vectors."""

from __future__ import annotations

import json
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.serving.http.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]
QUERY = "what is the capital of france?"
TOKENS = "token_embeddings"
DOCS = ["paris is the capital of france.", "the quick brown fox, jumps over the lazy dog!", "hello world"]


def build_colbert(out: Path) -> Path:
    """The tiny model as sentence-transformers saves a MultiVectorEncoder (a folder loadable by both)."""
    import torch
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.multi_vector_encoder.modules import MultiVectorMask
    from transformers import AutoTokenizer, BertModel

    from tests.tiny_models import build_bert

    bert = build_bert(out.parent / "bert", pooling=None)
    tok = AutoTokenizer.from_pretrained(bert)
    tok.add_tokens(list(string.punctuation))  # the tiny vocabulary has none: the skiplist needs them
    tok.add_special_tokens({"additional_special_tokens": ["[Q]", "[D]"]})
    tok.save_pretrained(bert)
    model = BertModel.from_pretrained(bert)
    torch.manual_seed(11)
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(bert)
    dense = Dense(32, 16, bias=False, activation_function=torch.nn.Identity(), module_input_name=TOKENS,
                  module_output_name=TOKENS)
    modules = [Transformer(str(bert), max_seq_length=64), dense, Normalize(module_input_name=TOKENS),
               MultiVectorMask(skiplist_words=list(string.punctuation))]
    encoder = MultiVectorEncoder(modules=modules, prompts={"query": "[Q] ", "document": "[D] "})
    encoder.save(str(out))
    return out


@pytest.fixture(scope="module")
def colbert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    import torch
    from sentence_transformers import MultiVectorEncoder

    torch.manual_seed(5)
    source = build_colbert(tmp_path_factory.mktemp("colbert") / "colbert")
    return source, MultiVectorEncoder(str(source), device="cpu")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, colbert: tuple[Path, Any]) -> Path:
    from ovembed.config import ExportConfig, Task, WeightFormat
    from ovembed.export.pipeline import export_model

    root = tmp_path_factory.mktemp("colbert-repo")
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
    assert ref.shape == got.shape
    return float(((ref * got).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(got, axis=-1))).min())


def test_record_and_export_verification(repo: Path) -> None:
    record = json.loads((repo / "colbert" / "ovembed_model.json").read_text())
    assert record["task"] == "token_embed" and record["dimensions"] == 16
    section = record["token_embed"]
    assert section["query_marker_id"] != section["document_marker_id"] and len(section["skiplist_ids"]) == 32
    assert record["verification"]["min_token_cosine"] >= 0.9999


def test_token_vectors_match_multivector_encoder(client: TestClient, colbert: tuple[Path, Any]) -> None:
    encoder = colbert[1]
    docs = client.post("/embed_all", json={"inputs": DOCS})
    assert docs.status_code == 200, docs.text
    for got, ref in zip(docs.json(), _reference(encoder, DOCS, "document"), strict=True):
        assert _min_cosine(ref, np.array(got, dtype=np.float32)) >= 0.9999
    query = client.post("/embed_all", json={"inputs": [QUERY], "input_type": "query"}).json()[0]
    assert _min_cosine(_reference(encoder, [QUERY], "query")[0], np.array(query, dtype=np.float32)) >= 0.9999
    openai = client.post("/v3/embeddings", json={"model": "colbert", "input": DOCS[0]}).json()
    np.testing.assert_allclose(np.array(openai["data"][0]["embeddings"]), np.array(docs.json()[0]), atol=1e-6)


def test_rerank_maxsim_matches_reference(client: TestClient, colbert: tuple[Path, Any]) -> None:
    encoder = colbert[1]
    q = _reference(encoder, [QUERY], "query")[0]
    want = np.array([(q @ d.T).max(axis=1).sum() for d in _reference(encoder, DOCS, "document")])
    resp = client.post("/v3/rerank", json={"model": "colbert", "query": QUERY, "documents": DOCS})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    got = np.array([r["relevance_score"] for r in sorted(results, key=lambda r: r["index"])])
    assert np.abs(got - want).max() < 1e-4, (got, want)
    assert [r["index"] for r in results] == np.argsort(-want, kind="stable").tolist()
