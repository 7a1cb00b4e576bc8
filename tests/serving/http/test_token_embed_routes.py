"""Token vectors over the real token servable and batcher with a fake per-token engine: TEI's /embed_all,
/v3/embeddings over a token model (float, base64, compact), markers and the document skiplist, MaxSim rerank
(against the formula written out here), and task mix-ups both ways."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.config import Pooling, Task
from ovembed.serving.api import ModelInfo
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.batching.policy import BatchPolicy
from ovembed.serving.tasks.token_embed import TokenEmbedServable, TokenSettings
from ovembed.serving.tasks.tokenizer import ServingTokenizer
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

WORDS = ["[PAD]", "[CLS]", "[SEP]", "[Q]", "[D]", ",", ".", "paris", "is", "nice", "hello", "world", "the",
         "capital", "of", "france", "berlin", "a", "b", "c"]
IDS = {w: i for i, w in enumerate(WORDS)}
DIM = 4
MAX_LEN = 12
TABLE = np.random.default_rng(7).standard_normal((len(WORDS), DIM)).astype(np.float32)
TABLE /= np.linalg.norm(TABLE, axis=1, keepdims=True)
SETTINGS = TokenSettings(IDS["[Q]"], IDS["[D]"], frozenset({IDS[","], IDS["."]}))


def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel(IDS, unk_token="[PAD]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    return str(tok.to_str())


class TokenEngine:
    """[batch, seq, DIM]: each position's vector is TABLE[id] (padding too: the batcher must drop it)."""

    dimensions = DIM
    pad_lone = True
    slots = 1
    per_token = True

    def __init__(self) -> None:
        self.widths: list[int] = []

    def start(self, input_ids: np.ndarray, attention_mask: np.ndarray, on_done: Callable[[Any], None]) -> None:
        self.widths.append(input_ids.shape[1])
        on_done(TABLE[input_ids])


def ids_of(text: str, marker: str) -> list[int]:
    words = text.replace(",", " , ").replace(".", " . ").split()
    return [IDS["[CLS]"], IDS[marker], *(IDS[w] for w in words), IDS["[SEP]"]]


def expected(text: str, kind: str) -> np.ndarray:
    ids = ids_of(text, "[Q]" if kind == "query" else "[D]")
    if kind == "document":
        ids = [i for i in ids if i not in (IDS[","], IDS["."])]
    return TABLE[ids]


def reference_maxsim(q: np.ndarray, d: np.ndarray) -> float:
    return float(sum(max(float(qi @ dj) for dj in d) for qi in q))


@pytest.fixture
def client() -> Iterator[TestClient]:
    holder: dict[str, Any] = {}

    class Registry(FakeRegistry):
        async def start(self) -> None:
            info = ModelInfo(name="colbert", dimensions=DIM, max_length=MAX_LEN - 1, pooling=Pooling.CLS,
                             normalize=True, truncate=False, device="CPU", precision="fp32", created=0,
                             task=Task.TOKEN_EMBED, endpoint="/embed_all", serves=(Task.RERANK,))
            engine = holder["engine"] = TokenEngine()
            batcher = Batcher(engine, BatchPolicy(max_batch_tokens=4096), max_queue=64, name="colbert")
            tokenizer = ServingTokenizer(_tokenizer_json(), max_length=MAX_LEN - 1)
            self.servables["colbert"] = TokenEmbedServable(info, tokenizer, batcher, settings=SETTINGS)  # type: ignore[assignment]
            self.states["colbert"] = self.states["dense"]
            await super().start()

    registry = Registry(FakeServable("dense", max_length=MAX_LEN))
    with TestClient(make_app(registry, max_inputs=8)) as test_client:
        yield test_client


def test_embed_all_one_array_per_input_markers_and_skiplist(client: TestClient) -> None:
    texts = ["paris is nice.", "hello, world"]
    resp = client.post("/embed_all", json={"inputs": texts})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body) == 2
    for got, text in zip(body, texts, strict=True):
        np.testing.assert_allclose(np.array(got), expected(text, "document"), atol=1e-6)
    assert resp.headers["x-prompt-tokens"] == str(len(ids_of(texts[0], "[D]")) + len(ids_of(texts[1], "[D]")))
    query = client.post("/v3/embed_all", json={"inputs": "paris, nice", "input_type": "query"}).json()
    np.testing.assert_allclose(np.array(query[0]), expected("paris, nice", "query"), atol=1e-6)  # keeps ','


def test_openai_embeddings_float_base64_and_compact(client: TestClient) -> None:
    text = "the capital of france is paris."
    want = expected(text, "document")
    body = client.post("/v3/embeddings", json={"model": "colbert", "input": [text, "hello"]}).json()
    assert [d["index"] for d in body["data"]] == [0, 1] and "embedding" not in body["data"][0]
    np.testing.assert_allclose(np.array(body["data"][0]["embeddings"]), want, atol=1e-6)
    assert body["usage"]["prompt_tokens"] == len(ids_of(text, "[D]")) + len(ids_of("hello", "[D]"))
    b64 = client.post("/v3/embeddings", json={"model": "colbert", "input": text, "encoding_format": "base64"}).json()
    item = b64["data"][0]
    decoded = np.frombuffer(base64.b64decode(item["embeddings"]), dtype="<f4").reshape(item["shape"])
    np.testing.assert_array_equal(decoded, np.array(body["data"][0]["embeddings"], dtype=np.float32))
    packed = client.post("/v3/embeddings", json={"model": "colbert", "input": text, "encoding_format": "binary"})
    assert packed.status_code == 200 and len(packed.json()["data"][0]["embeddings"]) == len(want)
    bad = client.post("/v3/embeddings", json={"model": "colbert", "input": text, "encoding_format": "sparse"})
    assert bad.status_code == 400 and "token model" in bad.json()["error"]["message"]
    dims = client.post("/v3/embeddings", json={"model": "colbert", "input": text, "dimensions": 2})
    assert dims.status_code == 400


def test_rerank_is_maxsim_of_query_and_document_vectors(client: TestClient) -> None:
    query = "capital of france"
    docs = ["paris is the capital of france.", "berlin is nice", "hello, world"]
    resp = client.post("/v3/rerank", json={"model": "colbert", "query": query, "documents": docs})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    want = [reference_maxsim(expected(query, "query"), expected(d, "document")) for d in docs]
    got = {r["index"]: r["relevance_score"] for r in results}
    for i, score in enumerate(want):
        assert got[i] == pytest.approx(score, abs=1e-5)
    assert [r["index"] for r in results] == sorted(range(3), key=lambda i: -want[i])
    score = client.post("/score", json={"model": "colbert", "text_1": query, "text_2": docs})
    assert score.status_code == 200, score.text  # vLLM's /score shape: the same MaxSim
    assert [d["score"] for d in sorted(score.json()["data"], key=lambda d: d["index"])] == pytest.approx(want, abs=1e-5)


def test_wrong_task_both_ways(client: TestClient) -> None:
    dense = client.post("/embed_all", json={"inputs": "hello", "model": "dense"})
    assert dense.status_code == 400 and "/v3/embeddings" in dense.json()["error"]  # TEI's envelope
    sparse = client.post("/v3/embeddings", json={"input": "hello", "model": "colbert", "encoding_format": "sparse"})
    assert sparse.status_code == 400
    dense_v3 = client.post("/v3/embed_all", json={"inputs": "hello", "model": "dense"})
    message = dense_v3.json()["error"]["message"]  # OpenAI's envelope beside the /v3 routes
    assert "embeddings model" in message and "not a token_embed model" in message
    tei = client.post("/embed_sparse", json={"inputs": "hello", "model": "colbert"}).json()["error"]
    assert "token_embed model" in tei and "/embed_all" in tei


def test_too_long_without_truncate_and_padding_dropped(client: TestClient) -> None:
    long = " ".join(["a"] * 20)
    resp = client.post("/embed_all", json={"inputs": long})
    assert resp.status_code == 400
    cut = client.post("/embed_all", json={"inputs": long, "truncate": True}).json()
    assert len(cut[0]) == MAX_LEN  # [CLS] [D] 9 words [SEP]: the marker fits in the window
    both = client.post("/embed_all", json={"inputs": ["a", "a b c a b c"]}).json()
    assert [len(v) for v in both] == [4, 9]  # the short one's padding rows are gone


def test_tei_and_cohere_rerank_shapes_over_a_token_model(client: TestClient) -> None:
    query, docs = "capital of france", ["berlin is nice", "paris is the capital of france."]
    want = [reference_maxsim(expected(query, "query"), expected(d, "document")) for d in docs]
    tei = client.post("/rerank", json={"query": query, "texts": docs})  # no model: the one that answers rerank
    assert tei.status_code == 200, tei.text
    assert [r["index"] for r in tei.json()] == [1, 0]
    assert {r["index"]: r["score"] for r in tei.json()} == {i: pytest.approx(s, abs=1e-5) for i, s in enumerate(want)}
    cohere = client.post("/v2/rerank", json={"model": "colbert", "query": query, "documents": docs, "top_n": 1})
    assert cohere.status_code == 200 and [r["index"] for r in cohere.json()["results"]] == [1]


def test_output_bounded_by_the_batch_token_budget() -> None:
    import asyncio

    async def run() -> tuple[list[int], list[int]]:
        info = ModelInfo(name="colbert", dimensions=DIM, max_length=MAX_LEN - 1, pooling=Pooling.CLS, normalize=True,
                         truncate=True, device="CPU", precision="fp32", created=0, task=Task.TOKEN_EMBED)
        engine = TokenEngine()
        shapes: list[int] = []
        start = engine.start

        def recording(ids: np.ndarray, mask: np.ndarray, on_done: Callable[[Any], None]) -> None:
            shapes.append(ids.size)
            start(ids, mask, on_done)

        engine.start = recording  # type: ignore[method-assign]
        batcher = Batcher(engine, BatchPolicy(max_batch_tokens=32), max_queue=64, name="colbert")
        servable = TokenEmbedServable(info, ServingTokenizer(_tokenizer_json(), max_length=MAX_LEN - 1), batcher,
                                      settings=SETTINGS)
        result = await servable.embed_tokens([" ".join(["a b c"] * 5)] * 10)
        await batcher.stop()
        return shapes, [len(v) for v in result.vectors]

    shapes, lengths = asyncio.run(run())
    assert lengths == [MAX_LEN] * 10  # truncated to the window, marker included
    assert len(shapes) > 1 and max(shapes) <= 32  # each [batch, width, dim] output holds at most 32 token rows
