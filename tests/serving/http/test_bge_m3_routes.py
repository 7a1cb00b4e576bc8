"""A bge_m3 model over the real servable and batcher with a fake engine that returns the packed rows of a known
encoder (a hidden vector per token id): /v3/embeddings (dense), /embed_sparse and encoding_format sparse,
/embed_all (multi-vector), the several-outputs request (one inference), /v3/rerank by the combined score, each
against FlagEmbedding's formulas written out here; and the error paths (a plain embeddings model asked for sparse,
token vectors, several outputs or rerank weights gets a 400 naming its task)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import Pooling, Task
from ovembed.serving.api import ModelInfo
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.batching.policy import BatchPolicy
from ovembed.serving.tasks.bge_m3 import BgeM3Servable, M3Settings
from ovembed.serving.tasks.tokenizer import ServingTokenizer
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

WORDS = ["<s>", "<pad>", "</s>", "<unk>", "paris", "is", "nice", "hello", "world", "the", "capital", "of",
         "france", "berlin"]
IDS = {w: i for i, w in enumerate(WORDS)}
UNUSED = (0, 1, 2, 3)
HIDDEN, DIM, MAX_LEN = 6, 4, 12
_RNG = np.random.default_rng(21)
TABLE = _RNG.standard_normal((len(WORDS), HIDDEN)).astype(np.float32)  # the "encoder": one vector per id
SPARSE_W, SPARSE_B = _RNG.standard_normal((1, HIDDEN)).astype(np.float32), np.float32([0.3])
COLBERT_W = _RNG.standard_normal((DIM, HIDDEN)).astype(np.float32)
DOCS = ["paris is the capital of france", "berlin is nice", "hello world hello"]
QUERY = "the capital of france"


def _norm(x: np.ndarray) -> np.ndarray:
    return np.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), dtype=np.float32)


class PackedEngine:
    """[batch, seq, HIDDEN]: row 0 the dense vector, then per token its colbert vector and sparse weight."""

    dimensions = HIDDEN
    pad_lone = True
    slots = 1
    per_token = True

    def __init__(self) -> None:
        self.batches = 0

    def start(self, input_ids: np.ndarray, attention_mask: np.ndarray, on_done: Callable[[Any], None]) -> None:
        self.batches += 1
        hidden = TABLE[input_ids]
        out = np.zeros((*input_ids.shape, HIDDEN), dtype=np.float32)
        out[:, 0, :] = _norm(hidden[:, 0])
        out[:, 1:, :DIM] = _norm(hidden[:, 1:] @ COLBERT_W.T)
        out[:, 1:, DIM] = np.maximum(hidden[:, 1:] @ SPARSE_W.T + SPARSE_B, 0)[..., 0]
        on_done(out)


def ids_of(text: str) -> list[int]:
    return [IDS["<s>"], *(IDS[w] for w in text.split()), IDS["</s>"]]


def reference(text: str) -> tuple[np.ndarray, dict[int, float], np.ndarray]:
    """FlagEmbedding's dense_vecs, lexical_weights and colbert_vecs of one text (the formulas, not our code)."""
    ids = ids_of(text)
    hidden = TABLE[ids]
    weights = np.maximum(hidden @ SPARSE_W.T + SPARSE_B, 0)[:, 0]
    lexical: dict[int, float] = defaultdict(int)
    for w, idx in zip(weights, ids, strict=True):
        if idx not in UNUSED and w > 0 and w > lexical[idx]:
            lexical[idx] = float(w)
    return _norm(hidden[0]), dict(lexical), _norm(hidden[1:] @ COLBERT_W.T)


def reference_score(query: str, doc: str, weights: tuple[float, float, float] = (0.4, 0.2, 0.4)) -> float:
    qd, ql, qc = reference(query)
    pd, pl, pc = reference(doc)
    dense = float(qd @ pd)
    sparse = sum(w * pl[t] for t, w in ql.items() if t in pl)
    colbert = float((qc @ pc.T).max(axis=1).sum() / len(qc))
    return (weights[0] * dense + weights[1] * sparse + weights[2] * colbert) / sum(weights)


def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel(IDS, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return str(tok.to_str())


@pytest.fixture
def engine() -> PackedEngine:
    return PackedEngine()


@pytest.fixture
def client(engine: PackedEngine) -> Iterator[TestClient]:
    class Registry(FakeRegistry):
        async def start(self) -> None:
            info = ModelInfo(name="m3", dimensions=HIDDEN, max_length=MAX_LEN, pooling=Pooling.CLS, normalize=True,
                             truncate=False, device="CPU", precision="fp32", created=0, task=Task.BGE_M3,
                             endpoint="/v3/embeddings",
                             serves=(Task.EMBEDDINGS, Task.SPARSE, Task.TOKEN_EMBED, Task.RERANK))
            batcher = Batcher(engine, BatchPolicy(max_batch_tokens=4096), max_queue=64, name="m3")
            tokenizer = ServingTokenizer(_tokenizer_json(), max_length=MAX_LEN)
            self.servables["m3"] = BgeM3Servable(info, tokenizer, batcher,  # type: ignore[assignment]
                                                 settings=M3Settings(HIDDEN, DIM, frozenset(UNUSED)))
            self.states["m3"] = self.states["dense"]
            await super().start()

    registry = Registry(FakeServable("dense", max_length=MAX_LEN))
    with TestClient(make_app(registry, max_inputs=8)) as test_client:
        yield test_client


def test_dense_sparse_and_token_vectors_each_on_its_route(client: TestClient) -> None:
    dense = client.post("/v3/embeddings", json={"model": "m3", "input": DOCS})
    assert dense.status_code == 200, dense.text
    for item, text in zip(dense.json()["data"], DOCS, strict=True):
        np.testing.assert_allclose(item["embedding"], reference(text)[0], atol=1e-6)
    sparse = client.post("/embed_sparse", json={"inputs": DOCS, "model": "m3"})
    assert sparse.status_code == 200, sparse.text
    for got, text in zip(sparse.json(), DOCS, strict=True):
        want = reference(text)[1]
        assert [g["index"] for g in got] == sorted(want)
        assert {g["index"]: g["value"] for g in got} == pytest.approx(want, abs=1e-6)
    openai_sparse = client.post("/v3/embeddings", json={"model": "m3", "input": DOCS[2], "encoding_format": "sparse",
                                                        "top_k": 1}).json()["data"][0]["embedding"]
    heaviest = max(reference(DOCS[2])[1].items(), key=lambda kv: kv[1])
    assert openai_sparse["indices"] == [heaviest[0]] and openai_sparse["values"] == pytest.approx([heaviest[1]])
    tokens = client.post("/embed_all", json={"inputs": DOCS, "model": "m3"})
    assert tokens.status_code == 200, tokens.text
    for got, text in zip(tokens.json(), DOCS, strict=True):
        want = reference(text)[2]
        assert np.array(got).shape == want.shape == (len(ids_of(text)) - 1, DIM)  # every token but <s>
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_several_outputs_from_one_inference(client: TestClient, engine: PackedEngine) -> None:
    resp = client.post("/v3/embeddings", json={"model": "m3", "input": DOCS,
                                               "output": ["dense", "sparse", "multivector"]})
    assert resp.status_code == 200, resp.text
    assert engine.batches == 1
    body = resp.json()
    assert body["usage"]["prompt_tokens"] == sum(len(ids_of(t)) for t in DOCS)
    for item, text in zip(body["data"], DOCS, strict=True):
        dense, lexical, colbert = reference(text)
        np.testing.assert_allclose(item["embedding"], dense, atol=1e-6)
        sparse = item["sparse_embedding"]
        assert dict(zip(sparse["indices"], sparse["values"], strict=True)) == pytest.approx(lexical, abs=1e-6)
        np.testing.assert_allclose(item["multivector"], colbert, atol=1e-6)
    only = client.post("/v3/embeddings", json={"model": "m3", "input": "hello", "output": ["sparse"]}).json()
    assert set(only["data"][0]) == {"object", "index", "sparse_embedding"}


def test_rerank_is_the_combined_score(client: TestClient, engine: PackedEngine) -> None:
    resp = client.post("/v3/rerank", json={"model": "m3", "query": QUERY, "documents": DOCS})
    assert resp.status_code == 200, resp.text
    assert engine.batches == 1  # query and documents in one inference
    results = resp.json()["results"]
    want = np.array([reference_score(QUERY, d) for d in DOCS])
    got = np.array([r["relevance_score"] for r in sorted(results, key=lambda r: r["index"])])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert [r["index"] for r in results] == np.argsort(-want, kind="stable").tolist()
    dense_only = client.post("/v3/rerank", json={"model": "m3", "query": QUERY, "documents": DOCS,
                                                 "weights": [1, 0, 0]}).json()["results"]
    got = {r["index"]: r["relevance_score"] for r in dense_only}
    for i, d in enumerate(DOCS):
        assert got[i] == pytest.approx(reference_score(QUERY, d, (1, 0, 0)), abs=1e-5)
    score = client.post("/score", json={"model": "m3", "text_1": QUERY, "text_2": DOCS})
    assert score.status_code == 200, score.text
    got = [d["score"] for d in sorted(score.json()["data"], key=lambda d: d["index"])]
    np.testing.assert_allclose(got, want, atol=1e-5)  # vLLM's /score shape, the same combined score


@pytest.mark.parametrize(("path", "body", "words"), [
    ("/v3/embeddings", {"model": "dense", "input": "hello", "output": ["sparse"]}, "embeddings model"),
    ("/v3/embeddings", {"model": "dense", "input": "hello", "output": ["dense", "multivector"]}, "embeddings model"),
    ("/v3/embed_sparse", {"model": "dense", "inputs": "hello"}, "embeddings model"),
    ("/v3/embed_all", {"model": "dense", "inputs": "hello"}, "embeddings model"),
    ("/v3/embeddings", {"model": "m3", "input": "hello", "output": ["dense", "colbert"]}, "'output' must"),
    ("/v3/embeddings", {"model": "m3", "input": "hello", "output": []}, "'output' must"),
    ("/v3/embeddings", {"model": "m3", "input": "hello", "output": ["dense"], "top_k": 3}, "sparse output"),
    ("/v3/embeddings", {"model": "m3", "input": "hello", "output": ["dense"], "dimensions": 3}, "'dimensions'"),
    ("/v3/rerank", {"model": "m3", "query": "q", "documents": ["d"], "weights": [1, 1]}, "'weights' must"),
    ("/v3/rerank", {"model": "m3", "query": "q", "documents": ["d"], "weights": [0, 0, 0]}, "'weights' must"),
])
def test_errors_name_the_problem(client: TestClient, path: str, body: dict[str, Any], words: str) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == 400, resp.text
    assert words in resp.json()["error"]["message"]


def test_rerank_weights_on_a_reranker_name_its_task() -> None:
    registry = FakeRegistry(FakeServable("ce", task="rerank"))
    with TestClient(make_app(registry)) as client:
        resp = client.post("/v3/rerank", json={"model": "ce", "query": "q", "documents": ["d"], "weights": [1, 1, 1]})
    assert resp.status_code == 400
    assert "a rerank model" in resp.json()["error"]["message"] and "bge_m3" in resp.json()["error"]["message"]
