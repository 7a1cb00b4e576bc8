"""Ollama routes (ovembed/serving/http/routes/ollama.py, protocol/ollama.py) over the fake engine."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed import __version__
from tests.serving.fakes import (
    CREATED,
    FakeRegistry,
    FakeServable,
    expected_vector,
    make_app,
    seen_ids,
)

DIMS = 16
MAX_LEN = 8
LONG = "w " * 10  # 12 tokens


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(FakeServable("fake", dimensions=DIMS, max_length=MAX_LEN),
                        FakeServable("org/int8", dimensions=DIMS, max_length=MAX_LEN,
                                     precision="int8"),
                        loading=["slow"])


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    with TestClient(make_app(registry, max_inputs=4)) as test_client:
        yield test_client


def vec(text: str, truncate: bool = False) -> np.ndarray:
    return expected_vector(seen_ids(text, MAX_LEN, truncate), DIMS, True)


def ollama_error(resp: Any, status: int, message: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json() == {"error": message}


def test_embed_string(client: TestClient) -> None:
    body = client.post("/api/embed", json={"model": "fake", "input": "hi there"}).json()
    assert set(body) == {"model", "embeddings", "total_duration", "load_duration",
                         "prompt_eval_count"}
    assert body["model"] == "fake"
    assert len(body["embeddings"]) == 1
    np.testing.assert_allclose(body["embeddings"][0], vec("hi there"), rtol=1e-6)
    assert body["prompt_eval_count"] == 4
    assert body["load_duration"] == 0
    assert isinstance(body["total_duration"], int) and body["total_duration"] > 0


def test_embed_list_options_and_keep_alive(client: TestClient) -> None:
    body = client.post("/api/embed", json={"model": "fake", "input": ["a", "b c"],
                                           "keep_alive": "5m", "options": {"num_ctx": 8}}).json()
    assert len(body["embeddings"]) == 2
    np.testing.assert_allclose(body["embeddings"][1], vec("b c"), rtol=1e-6)
    assert body["prompt_eval_count"] == 3 + 4


def test_embed_empty_input_is_a_load_call(client: TestClient) -> None:
    values: list[Any] = ["", [], None]
    for value in values:
        body = client.post("/api/embed", json={"model": "fake", "input": value}).json()
        assert body == {"model": "fake", "embeddings": []}


def test_embed_truncates_by_default(client: TestClient, registry: FakeRegistry) -> None:
    body = client.post("/api/embed", json={"model": "fake", "input": LONG}).json()
    assert body["prompt_eval_count"] == MAX_LEN
    np.testing.assert_allclose(body["embeddings"][0], vec(LONG, truncate=True), rtol=1e-6)
    assert registry.servables["fake"].calls[-1][1] is True


def test_embed_truncate_false_uses_ollamas_error(client: TestClient) -> None:
    resp = client.post("/api/embed", json={"model": "fake", "input": LONG, "truncate": False})
    ollama_error(resp, 400, "input length exceeds maximum context length")


def test_embed_dimensions(client: TestClient) -> None:
    body = client.post("/api/embed", json={"model": "fake", "input": "a", "dimensions": 4}).json()
    got = np.array(body["embeddings"][0])
    np.testing.assert_allclose(got, vec("a")[:4] / np.linalg.norm(vec("a")[:4]), rtol=1e-5)
    full = client.post("/api/embed", json={"model": "fake", "input": "a", "dimensions": 0}).json()
    assert len(full["embeddings"][0]) == DIMS
    resp = client.post("/api/embed", json={"model": "fake", "input": "a", "dimensions": 99})
    ollama_error(resp, 400, f"'dimensions' must be at most {DIMS} for model 'fake', got 99")
    resp = client.post("/api/embed", json={"model": "fake", "input": "a", "dimensions": -1})
    ollama_error(resp, 400, "'dimensions' must be at least 0, got -1")


def test_embed_latest_tag_resolves(client: TestClient) -> None:
    body = client.post("/api/embed", json={"model": "fake:latest", "input": "a"}).json()
    assert body["model"] == "fake:latest"
    assert len(body["embeddings"]) == 1


@pytest.mark.parametrize(("payload", "status", "message"), [
    ({"input": "a"}, 400, "model is required"),
    ({"model": "", "input": "a"}, 400, "model is required"),
    ({"model": "fake", "input": 3}, 400, "invalid input type"),
    ({"model": "fake", "input": ["a", 3]}, 400, "invalid input type"),
    ({"model": "fake", "input": "a", "truncate": "no"}, 400, "'truncate' must be a boolean"),
    ({"model": "nope", "input": "a"}, 404, "The model 'nope' does not exist"),
    ({"model": "nope:latest", "input": "a"}, 404, "The model 'nope' does not exist"),
    ({"model": "slow", "input": "a"}, 503, "The model 'slow' is still loading"),
    ({"model": "fake", "input": ["a"] * 5}, 413,
     "Too many inputs: 5 in one request, the limit is 4"),
])
def test_embed_errors(client: TestClient, payload: dict[str, Any], status: int,
                      message: str) -> None:
    ollama_error(client.post("/api/embed", json=payload), status, message)


def test_embed_malformed_json(client: TestClient) -> None:
    resp = client.post("/api/embed", content=b"{oops")
    assert resp.status_code == 400
    assert resp.json()["error"].startswith("Invalid JSON body")


def test_embed_overloaded(client: TestClient, registry: FakeRegistry) -> None:
    registry.servables["fake"].overloaded = True
    ollama_error(client.post("/api/embed", json={"model": "fake", "input": "a"}), 429,
                 "The model's queue is full, retry later")


def test_legacy_embeddings(client: TestClient) -> None:
    body = client.post("/api/embeddings", json={"model": "fake", "prompt": "hi there"}).json()
    assert list(body) == ["embedding"]
    np.testing.assert_allclose(body["embedding"], vec("hi there"), rtol=1e-6)
    long = client.post("/api/embeddings", json={"model": "fake", "prompt": LONG}).json()
    np.testing.assert_allclose(long["embedding"], vec(LONG, truncate=True), rtol=1e-6)
    empty = client.post("/api/embeddings", json={"model": "fake", "prompt": ""}).json()
    assert empty == {"embedding": []}
    ollama_error(client.post("/api/embeddings", json={"model": "fake", "prompt": 1}), 400,
                 "'prompt' must be a string")
    ollama_error(client.post("/api/embeddings", json={"prompt": "a"}), 400, "model is required")


def test_tags(client: TestClient) -> None:
    models = client.get("/api/tags").json()["models"]
    assert [m["name"] for m in models] == ["fake", "org/int8"]
    tag = models[1]
    assert tag["model"] == "org/int8"
    assert tag["modified_at"] == "2023-11-14T22:13:20+00:00"
    assert len(tag["digest"]) == 64
    assert tag["details"]["format"] == "openvino"
    assert tag["details"]["quantization_level"] == "INT8"
    assert CREATED == 1_700_000_000


def test_version_and_root(client: TestClient) -> None:
    assert client.get("/api/version").json() == {"version": __version__}
    root = client.get("/")
    assert root.status_code == 200
    assert root.text == "ovembed is running"
    assert root.headers["content-type"].startswith("text/plain")
    assert client.head("/").status_code == 200


def test_unknown_api_route_uses_ollama_shape(client: TestClient) -> None:
    ollama_error(client.get("/api/nothing"), 404, "Not Found")
