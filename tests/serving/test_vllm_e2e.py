"""The real ``python -m ovembed serve`` answering vLLM-shaped requests with `requests`-style raw HTTP,
where the numbers matter: /score and /rerank against sentence-transformers' CrossEncoder, the tiny
cross-encoder's 64-token window for the over-long query, and the embeddings fields against the same
model fed the token ids HF truncation produces (written from vLLM's documented API)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.live_server import LiveServer, live_server

QUERY = "what is the capital of france"
DOCS = ["paris is the capital", "the quick brown fox jumps over the lazy dog", "hello world"]
TEXT = "the quick brown fox jumps over the lazy dog near the river bank"

pytestmark = [pytest.mark.timeout(900), pytest.mark.filterwarnings("ignore")]


@pytest.fixture(scope="module")
def server(rerank_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(rerank_repo, tmp_path_factory.mktemp("vllm-live") / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def cross_encoder(rerank_sources: dict[str, Path]):  # type: ignore[no-untyped-def]
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(rerank_sources["bert-rerank"]), device="cpu")


def test_score_and_rerank_equal_cross_encoder(http: httpx.Client, cross_encoder) -> None:  # type: ignore[no-untyped-def]
    ref = np.asarray(cross_encoder.predict([(QUERY, d) for d in DOCS], show_progress_bar=False))
    score = http.post("/score", json={"model": "rerank/bert", "text_1": QUERY, "text_2": DOCS}).json()
    assert [d["score"] for d in score["data"]] == pytest.approx(ref.tolist(), abs=1e-4)
    pairs = [("paris", DOCS[0]), ("fox", DOCS[1])]
    nn = http.post("/v1/score", json={"model": "rerank/bert", "text_1": [p[0] for p in pairs],
                                      "text_2": [p[1] for p in pairs]}).json()
    ref_nn = np.asarray(cross_encoder.predict(pairs, show_progress_bar=False))
    assert [d["score"] for d in nn["data"]] == pytest.approx(ref_nn.tolist(), abs=1e-4)
    rerank = http.post("/rerank", json={"model": "rerank/bert", "query": QUERY, "documents": DOCS}).json()
    assert [r["index"] for r in rerank["results"]] == np.argsort(-ref, kind="stable").tolist()
    assert all(r["document"] == {"text": DOCS[r["index"]]} for r in rerank["results"])
    logits = http.post("/rerank", json={"model": "rerank/bert", "query": QUERY, "documents": DOCS,
                                        "use_activation": False}).json()
    got = {r["index"]: r["relevance_score"] for r in logits["results"]}
    assert [got[i] for i in range(len(DOCS))] == pytest.approx(np.log(ref / (1 - ref)).tolist(), abs=1e-3)


def test_over_long_query(http: httpx.Client) -> None:
    long_query = " ".join(["capital"] * 40)  # over half the 64-token window
    resp = http.post("/rerank", json={"model": "rerank/bert", "query": long_query, "documents": DOCS})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "query"
    assert "the model takes queries of at most 32 (half its 64-token window)" in resp.json()["error"]["message"]
    assert http.post("/v2/rerank", json={"model": "rerank/bert", "query": long_query,
                                         "documents": DOCS}).status_code == 200  # Cohere cuts it
    assert http.post("/rerank", json={"model": "rerank/bert", "query": long_query, "documents": DOCS,
                                      "truncate_prompt_tokens": -1}).status_code == 200


def _vector(http: httpx.Client, **body: object) -> tuple[np.ndarray, int]:
    resp = http.post("/v1/embeddings", json={"model": "embed/bert", **body})
    assert resp.status_code == 200, resp.text
    data = resp.json()
    return np.asarray(data["data"][0]["embedding"], np.float32), data["usage"]["prompt_tokens"]


def test_embedding_fields_equal_the_token_ids_they_stand_for(http: httpx.Client, rerank_repo: Path) -> None:
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(rerank_repo.parent / "embed" / "bert"), truncation_side="left")
    cut = hf(TEXT, truncation=True, max_length=6)["input_ids"]
    got, tokens = _vector(http, input=TEXT, truncate_prompt_tokens=6)
    want, _ = _vector(http, input=cut)
    assert tokens == 6 and np.allclose(got, want, atol=1e-6)
    bare = hf(TEXT, add_special_tokens=False)["input_ids"]
    got, tokens = _vector(http, input=TEXT, add_special_tokens=False)
    want, _ = _vector(http, input=bare)
    assert tokens == len(bare) and np.allclose(got, want, atol=1e-6)
    full, _ = _vector(http, input=TEXT)
    half = http.post("/v1/embeddings", json={"model": "embed/bert", "input": TEXT, "encoding_format": "base64",
                                             "embed_dtype": "float16", "endianness": "big"}).json()
    decoded = np.frombuffer(base64.b64decode(half["data"][0]["embedding"]), ">f2")
    np.testing.assert_array_equal(decoded, full.astype(">f2"))
    refused = http.post("/v1/embeddings", json={"model": "embed/bert", "input": TEXT, "dimensions": 8})
    assert refused.status_code == 400 and "not trained for shorter vectors" in refused.json()["error"]["message"]


def test_tokenize_detokenize_round_trip(http: httpx.Client) -> None:
    body = http.post("/tokenize", json={"model": "embed/bert", "prompt": "hello world"}).json()
    assert body["count"] == len(body["tokens"]) and body["max_model_len"] > body["count"]
    back = http.post("/detokenize", json={"model": "embed/bert", "tokens": body["tokens"]}).json()
    assert back == {"prompt": "hello world"}


def test_score_with_the_embeddings_model_is_cosine(http: httpx.Client) -> None:
    a, _ = _vector(http, input="paris is the capital")
    b, _ = _vector(http, input=TEXT)
    body = http.post("/score", json={"model": "embed/bert", "text_1": "paris is the capital",
                                     "text_2": [TEXT, "paris is the capital"]}).json()
    want = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert [d["score"] for d in body["data"]] == pytest.approx([want, 1.0], abs=1e-5)
