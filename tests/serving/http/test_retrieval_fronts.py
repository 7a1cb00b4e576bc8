"""Prompts and chunking on the Ollama and KServe REST routes (fake engine): the same use case as the
OpenAI route, so each answer equals the OpenAI route's for the same request; and the per-input chunk
limit (``chunking.max_chunks`` / KServe ``max_chunks``) as a 413 in each API's envelope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.prompts import PromptSet
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

DIMS = 8
MAX_LEN = 6
LONG = " ".join(f"w{i}" for i in range(10))  # 10 words: 3 chunks of 4 (the model takes 4 beside [CLS] [SEP])


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(FakeServable("e5", dimensions=DIMS, max_length=MAX_LEN,
                                     prompts=PromptSet({"query": "query: ", "passage": "passage: "}, None)))


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    with TestClient(make_app(registry)) as c:
        yield c


def _openai(client: TestClient, inputs: list[str], **extra: Any) -> dict[str, Any]:
    resp = client.post("/v3/embeddings", json={"model": "e5", "input": inputs, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _rows(body: dict[str, Any]) -> np.ndarray:
    return np.array([d["embedding"] for d in body["data"]], dtype=np.float32)


def test_ollama_prompts_equal_openai(client: TestClient, registry: FakeRegistry) -> None:
    for extra in ({"prompt_name": "query"}, {"input_type": "search_document"}, {"truncation_direction": "left",
                                                                                 "truncate": True}):
        resp = client.post("/api/embed", json={"model": "e5", "input": ["hello there", LONG], **extra})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        ref = _openai(client, ["hello there", LONG], **{**extra, "truncate": True})  # Ollama truncates by default
        np.testing.assert_allclose(body["embeddings"], _rows(ref), rtol=1e-6)
    assert registry.servables["e5"].options[-1].truncation_direction == "left"
    # Ollama's legacy 'prompt' is its input, so /api/embed does not take 'prompt' as prompt text
    client.post("/api/embed", json={"model": "e5", "input": "hi", "prompt": "ignored: "})
    assert registry.servables["e5"].options[-1].prompt == ""


def test_ollama_chunking_mean_and_none(client: TestClient) -> None:
    body = client.post("/api/embed", json={"model": "e5", "input": [LONG], "chunking": {}}).json()
    np.testing.assert_allclose(body["embeddings"], _rows(_openai(client, [LONG], chunking={})), rtol=1e-6)
    assert "chunks" not in body
    body = client.post("/api/embed", json={"model": "e5", "input": ["short", LONG],
                                           "chunking": {"size": 4, "combine": "none"}}).json()
    ref = _openai(client, ["short", LONG], chunking={"size": 4, "combine": "none"})
    np.testing.assert_allclose(body["embeddings"], _rows(ref), rtol=1e-6)
    assert body["chunks"] == [{"index": d["index"], "chunk": d["chunk"]["index"], "start": d["chunk"]["start"],
                               "end": d["chunk"]["end"]} for d in ref["data"]]
    assert [c["index"] for c in body["chunks"]] == [0, 1, 1, 1]
    assert body["prompt_eval_count"] == ref["usage"]["prompt_tokens"]


def test_chunk_limit_is_413_in_each_envelope(client: TestClient) -> None:
    chunking = {"size": 4, "max_chunks": 2}
    resp = client.post("/v3/embeddings", json={"model": "e5", "input": LONG, "chunking": chunking})
    assert resp.status_code == 413
    err = resp.json()["error"]
    assert "needs 3 chunks of 4 tokens" in err["message"] and "'chunking.max_chunks' (2)" in err["message"]
    assert err["param"] == "chunking"
    resp = client.post("/api/embed", json={"model": "e5", "input": LONG, "chunking": chunking})
    assert resp.status_code == 413 and "'chunking.max_chunks' (2)" in resp.json()["error"]
    ok = client.post("/v3/embeddings", json={"model": "e5", "input": LONG, "chunking": {**chunking, "max_chunks": 3}})
    assert ok.status_code == 200
    bad = client.post("/v3/embeddings", json={"model": "e5", "input": LONG, "chunking": {"max_chunks": 0}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "max_chunks"


def _kserve(client: TestClient, texts: list[str], parameters: dict[str, Any]) -> Any:
    return client.post("/v2/models/e5/infer", json={
        "inputs": [{"name": "input", "datatype": "BYTES", "shape": [len(texts)], "data": texts}],
        "parameters": parameters})


def _kserve_rows(resp: Any) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    (out,) = resp.json()["outputs"]
    return np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def test_kserve_rest_parameters(client: TestClient) -> None:
    got = _kserve_rows(_kserve(client, ["hello", LONG], {"prompt_name": "query", "truncate": True}))
    np.testing.assert_allclose(got, _rows(_openai(client, ["hello", LONG], prompt_name="query", truncate=True)),
                               rtol=1e-6)
    got = _kserve_rows(_kserve(client, ["hello", LONG], {"input_type": "query", "chunk_size": 3,
                                                          "chunk_overlap": 1}))
    ref = _openai(client, ["hello", LONG], input_type="query", chunking={"size": 3, "overlap": 1})
    np.testing.assert_allclose(got, _rows(ref), rtol=1e-6)
    assert got.shape == (2, DIMS)  # KServe: one row per input (chunks combine by mean)
    got = _kserve_rows(_kserve(client, [LONG], {"chunking": True}))
    np.testing.assert_allclose(got, _rows(_openai(client, [LONG], chunking={})), rtol=1e-6)


@pytest.mark.parametrize(("parameters", "status", "message"), [
    ({"chunk_size": 4, "max_chunks": 1}, 413, "'chunking.max_chunks' (1)"),
    ({"chunking": "yes"}, 400, "Parameter 'chunking' must be a bool"),
    ({"chunk_size": "4"}, 400, "Parameter 'chunk_size' must be an integer"),
    ({"chunking": False, "chunk_size": 4}, 400, "chunking' is false"),
    ({"prompt_name": "nope"}, 400, "nope"),
    ({"truncation_direction": "up"}, 400, "truncation_direction"),
])
def test_kserve_rest_parameter_errors(client: TestClient, parameters: dict[str, Any], status: int,
                                      message: str) -> None:
    resp = _kserve(client, [LONG], parameters)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]  # KServe's envelope: {"error": "..."}
