"""A tiny random BGE-M3-style model (XLM-R encoder + sparse_linear.pt + colbert_linear.pt, seeded, offline), exported
fp32 with --task bge_m3 and served in process. Its outputs are compared with a reference computed here from PyTorch
following FlagEmbedding's published formulas (BGEM3FlagModel / M3Embedder; FlagEmbedding is not imported): dense =
normalize(CLS); lexical weights = relu(sparse_linear(h)) per token, max per token id, cls/eos/pad/unk dropped;
colbert = normalize(colbert_linear(h[:, 1:])) over the real tokens; compute_score's combination for rerank."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.serving.http.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]
QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "the quick brown fox jumps over the lazy dog", "hello world",
        "der schnelle braune fuchs springt über den faulen hund"]


class FlagReference:
    """FlagEmbedding's M3 encode and compute_score, reimplemented from the published description in PyTorch."""

    def __init__(self, folder: Path) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        hidden = self.model.config.hidden_size
        self.sparse = torch.nn.Linear(hidden, 1)
        self.sparse.load_state_dict(torch.load(folder / "sparse_linear.pt", weights_only=True))
        colbert = torch.load(folder / "colbert_linear.pt", weights_only=True)
        self.colbert = torch.nn.Linear(hidden, colbert["weight"].shape[0])
        self.colbert.load_state_dict(colbert)
        self.unused = {self.tok.convert_tokens_to_ids(self.tok.special_tokens_map[t])
                       for t in ("cls_token", "eos_token", "pad_token", "unk_token")}

    def encode(self, texts: list[str]) -> list[tuple[np.ndarray, dict[int, float], np.ndarray]]:
        import torch

        enc = self.tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        with torch.inference_mode():
            h = self.model(**enc).last_hidden_state
            dense = torch.nn.functional.normalize(h[:, 0], dim=-1)
            weights = torch.relu(self.sparse(h)).squeeze(-1)
            colbert = self.colbert(h[:, 1:]) * enc["attention_mask"][:, 1:][:, :, None]
            colbert = torch.nn.functional.normalize(colbert, dim=-1)
        out = []
        for row in range(len(texts)):
            n = int(enc["attention_mask"][row].sum())
            lexical: dict[int, float] = defaultdict(int)
            for w, idx in zip(weights[row].tolist(), enc["input_ids"][row].tolist(), strict=True):
                if idx not in self.unused and w > 0 and w > lexical[idx]:
                    lexical[idx] = w
            out.append((dense[row].numpy(), dict(lexical), colbert[row, : n - 1].numpy()))
        return out

    def score(self, query: str, docs: list[str], weights: tuple[float, float, float]) -> np.ndarray:
        (qd, ql, qc), *passages = self.encode([query, *docs])
        scores = []
        for pd, pl, pc in passages:
            dense = float(qd @ pd)
            sparse = sum(w * pl[t] for t, w in ql.items() if t in pl)
            colbert = float((qc @ pc.T).max(axis=1).sum() / len(qc))
            scores.append((weights[0] * dense + weights[1] * sparse + weights[2] * colbert) / sum(weights))
        return np.array(scores)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


@pytest.fixture(scope="module")
def m3(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FlagReference]:
    from tests.tiny_models import build_bge_m3

    source = build_bge_m3(tmp_path_factory.mktemp("bge-m3") / "bge-m3")
    return source, FlagReference(source)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, m3: tuple[Path, FlagReference]) -> Path:
    from ovembed.config import ExportConfig, Task, WeightFormat
    from ovembed.export.pipeline import export_model

    root = tmp_path_factory.mktemp("bge-m3-repo")
    export_model(ExportConfig(source_model=str(m3[0]), model_name="m3", model_repository_path=root, task=Task.BGE_M3,
                              weight_format=WeightFormat.FP32))
    return root


@pytest.fixture(scope="module")
def client(repo: Path) -> Iterator[TestClient]:
    cfg = ServeConfig(config_path=repo / "config.json", file_system_poll_wait_seconds=0)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 300
        while c.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield c


def test_one_ir_with_three_outputs_and_the_record(repo: Path) -> None:
    import openvino as ov

    model = ov.Core().read_model(repo / "m3" / "openvino_model.xml")
    assert [next(iter(o.get_names())) for o in model.outputs] == ["dense_embedding", "sparse_weights",
                                                                  "colbert_vectors"]
    record = json.loads((repo / "m3" / "ovembed_model.json").read_text())
    assert record["task"] == "bge_m3" and record["dimensions"] == 32
    assert record["bge_m3"] == {"dense_dimensions": 32, "colbert_dimensions": 16, "unused_token_ids": [0, 1, 2, 3]}
    check = record["verification"]
    assert check["min_dense_cosine"] >= 0.9999 and check["min_colbert_cosine"] >= 0.9999
    assert check["max_sparse_diff"] < 1e-4


def test_three_outputs_equal_the_reference(client: TestClient, m3: tuple[Path, FlagReference]) -> None:
    ref = m3[1].encode(DOCS)
    resp = client.post("/v3/embeddings", json={"model": "m3", "input": DOCS,
                                               "output": ["dense", "sparse", "multivector"]})
    assert resp.status_code == 200, resp.text
    nonzero = 0
    for item, (dense, lexical, colbert) in zip(resp.json()["data"], ref, strict=True):
        assert _cos(np.array(item["embedding"]), dense) >= 0.9999
        got = dict(zip(item["sparse_embedding"]["indices"], item["sparse_embedding"]["values"], strict=True))
        assert set(got) == set(lexical)
        assert max((abs(got[t] - w) for t, w in lexical.items()), default=0.0) < 1e-4
        nonzero += len(lexical)
        vectors = np.array(item["multivector"])
        assert vectors.shape == colbert.shape and _cos(vectors, colbert).min() >= 0.9999
    assert nonzero > 10  # the tiny heads give real sparse vectors
    dense = client.post("/v3/embeddings", json={"model": "m3", "input": DOCS}).json()["data"]
    np.testing.assert_allclose([d["embedding"] for d in dense], [i["embedding"] for i in resp.json()["data"]],
                               atol=1e-6)
    sparse = client.post("/embed_sparse", json={"model": "m3", "inputs": DOCS[:1]}).json()[0]
    assert {s["index"]: s["value"] for s in sparse} == pytest.approx(ref[0][1], abs=1e-4)
    tokens = client.post("/embed_all", json={"model": "m3", "inputs": DOCS[:1]}).json()[0]
    assert _cos(np.array(tokens), ref[0][2]).min() >= 0.9999


@pytest.mark.parametrize("weights", [None, [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
def test_rerank_is_compute_scores_combination(client: TestClient, m3: tuple[Path, FlagReference],
                                             weights: Any) -> None:
    want = m3[1].score(QUERY, DOCS, tuple(weights) if weights else (0.4, 0.2, 0.4))
    body: dict[str, Any] = {"model": "m3", "query": QUERY, "documents": DOCS}
    if weights is not None:
        body["weights"] = weights
    resp = client.post("/v3/rerank", json=body)
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    got = np.array([r["relevance_score"] for r in sorted(results, key=lambda r: r["index"])])
    assert np.abs(got - want).max() < 1e-4, (got, want)
