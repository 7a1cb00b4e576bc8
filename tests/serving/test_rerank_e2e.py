"""End to end: the real ``python -m ovembed serve`` serving rerank and embeddings models from one
config.json, called with the official ``cohere`` SDK (v2 and v1 clients, unmodified) and with raw
HTTP in TEI's shape; scores checked against sentence-transformers' CrossEncoder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.live_server import LiveServer, live_server

KEY = "rerank-secret"
QUERY = "what is the capital of france"
DOCS = ["paris is the capital", "the quick brown fox jumps over the lazy dog", "hello world",
        "openvino runs models fast on intel cpus"]

pytestmark = [pytest.mark.timeout(900), pytest.mark.filterwarnings("ignore")]


@pytest.fixture(scope="module")
def server(rerank_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("rerank-e2e")
    key_file = tmp / "api_key"
    key_file.write_text(f"{KEY}\n")
    with live_server(rerank_repo, tmp / "server.log", "--api_key_file", str(key_file)) as running:
        yield running


@pytest.fixture(scope="module")
def reference(rerank_sources: dict[str, Path]) -> np.ndarray:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(rerank_sources["bert-rerank"]), device="cpu")
    return np.asarray(model.predict([(QUERY, d) for d in DOCS], show_progress_bar=False))


def test_cohere_v2_client(server: LiveServer, reference: np.ndarray) -> None:
    import cohere

    client = cohere.ClientV2(base_url=server.base_url, api_key=KEY)
    resp = client.rerank(model="rerank/bert", query=QUERY, documents=DOCS, top_n=3)
    assert [r.index for r in resp.results] == np.argsort(-reference, kind="stable")[:3].tolist()
    for r in resp.results:
        assert abs(r.relevance_score - reference[r.index]) < 1e-4
    assert resp.meta is not None and resp.meta.tokens is not None and resp.meta.tokens.input_tokens > 0


def test_cohere_v1_client_with_the_ovms_base_url(server: LiveServer, reference: np.ndarray) -> None:
    import cohere

    client = cohere.Client(base_url=f"{server.base_url}/v3", api_key=KEY)  # OVMS's docs: base_url .../v3
    resp = client.rerank(model="rerank/bert", query=QUERY, documents=DOCS, return_documents=True)
    assert [r.index for r in resp.results] == np.argsort(-reference, kind="stable").tolist()
    assert [r.document.text for r in resp.results] == [DOCS[r.index] for r in resp.results]  # type: ignore[union-attr]


def test_cohere_client_errors(server: LiveServer) -> None:
    import cohere
    from cohere.core.api_error import ApiError

    with pytest.raises(ApiError) as bad_key:
        cohere.ClientV2(base_url=server.base_url, api_key="wrong").rerank(model="rerank/bert", query=QUERY,
                                                                           documents=DOCS)
    assert bad_key.value.status_code == 401
    with pytest.raises(ApiError) as wrong_model:
        cohere.ClientV2(base_url=server.base_url, api_key=KEY).rerank(model="embed/bert", query=QUERY,
                                                                       documents=DOCS)
    assert wrong_model.value.status_code == 400
    assert "is an embeddings model" in str(wrong_model.value.body)


def test_tei_shape_over_http(server: LiveServer, reference: np.ndarray) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    resp = httpx.post(f"{server.base_url}/rerank", headers=auth, timeout=60,
                      json={"model": "rerank/bert", "query": QUERY, "texts": DOCS, "return_text": True})
    assert resp.status_code == 200
    body = resp.json()
    assert [r["index"] for r in body] == np.argsort(-reference, kind="stable").tolist()
    assert [r["text"] for r in body] == [DOCS[r["index"]] for r in body]
    assert float(resp.headers["x-inference-time"]) >= 0
    refused = httpx.post(f"{server.base_url}/rerank", json={"query": QUERY, "texts": DOCS}, timeout=60)
    assert refused.status_code == 401 and refused.json()["error_type"] == "validation"
    embed = httpx.post(f"{server.base_url}/v3/embeddings", headers=auth, timeout=60,
                       json={"model": "embed/bert", "input": ["hello", "world"]})
    assert embed.status_code == 200 and len(embed.json()["data"]) == 2


def test_benchmark_task_rerank(server: LiveServer) -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "ovembed", "benchmark", "--task", "rerank", "--model", "rerank/bert",
         "--api_url", f"{server.base_url}/v3/rerank", "--batch_size", "10", "--limit", "40", "--json",
         "--api_key", KEY, "--synthetic_length", "20"],
        capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["config"]["task"] == "rerank" and report["config"]["api_url"].endswith("/v3/rerank")
    assert report["requests_ok"] == report["requests"] == 4 and report["documents_ok"] == 40
    assert report["dimensions"] == 1 and report["api"] == "rerank"
    assert report["tokens"] > 40 * 20  # query + document per pair, reported by the server
    tei = subprocess.run(
        [sys.executable, "-m", "ovembed", "benchmark", "--task", "rerank", "--model", "rerank/bert",
         "--api_url", f"{server.base_url}/rerank", "--batch_size", "5", "--limit", "10", "--json",
         "--api_key", KEY], capture_output=True, text=True, timeout=300, check=False)
    assert tei.returncode == 0, tei.stderr
    tei_report = json.loads(tei.stdout)
    assert tei_report["requests_ok"] == 2 and tei_report["api"] == "tei-rerank"
