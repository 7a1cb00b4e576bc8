"""One sparse contract, two registries: the fake sparse model of the route tests and the real tiny masked LM.

Each case goes through the real app and asserts the status and the exact body, so the fake's sparse
behaviour (task mix-ups, refusals, shapes) cannot drift from what users get.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.serving.http.app import create_app
from tests.serving.fakes import FakeRegistry, FakeServable, make_app


@pytest.fixture(scope="module", params=["fake", pytest.param("real", marks=pytest.mark.slow)])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    if request.param == "fake":
        app = make_app(FakeRegistry(FakeServable("sparse/bert", task="sparse", max_length=64),
                                    FakeServable("embed/bert", max_length=64)))
    else:
        sparse_repo: Path = request.getfixturevalue("sparse_repo")
        app = create_app(ServeConfig(config_path=sparse_repo, file_system_poll_wait_seconds=0), environ={})
    with TestClient(app, base_url="http://localhost") as test_client:
        deadline = time.monotonic() + 120
        while test_client.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "the registry did not get ready"
            time.sleep(0.05)
        yield test_client


SPARSE_NOT_EMBEDDINGS = ("The model 'sparse/bert' is a sparse model, not an embeddings model "
                         "(use /embed_sparse, or encoding_format 'sparse' on /v3/embeddings)")
EMBEDDINGS_NOT_SPARSE = "The model 'embed/bert' is an embeddings model, not a sparse model (use /v3/embeddings)"
CHUNKING = ("The model 'sparse/bert' is a sparse model: 'chunking' is for dense embeddings "
            "(split long documents before sending them)")


def _openai(message: str, param: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


@pytest.mark.parametrize(("path", "body", "status", "expected"), [
    ("/v3/embeddings", {"model": "sparse/bert", "input": "hello"}, 400, _openai(SPARSE_NOT_EMBEDDINGS, "model")),
    ("/v3/embeddings", {"model": "embed/bert", "input": "hello", "encoding_format": "sparse"}, 400,
     _openai(EMBEDDINGS_NOT_SPARSE, "model")),
    ("/v3/embeddings", {"model": "sparse/bert", "input": "hello", "encoding_format": "sparse", "chunking": {}}, 400,
     _openai(CHUNKING, "chunking")),
    ("/embed_sparse", {"inputs": "hello", "model": "embed/bert"}, 400,
     {"error": EMBEDDINGS_NOT_SPARSE, "error_type": "validation"}),
    ("/api/embed", {"model": "sparse/bert", "input": "hello"}, 400, {"error": SPARSE_NOT_EMBEDDINGS}),
])
def test_errors(client: TestClient, path: str, body: dict[str, Any], status: int, expected: dict[str, Any]) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == status, resp.text
    assert resp.json() == expected


def test_shapes_pruning_and_usage(client: TestClient) -> None:
    texts = ["the quick brown fox", "hello world"]
    resp = client.post("/embed_sparse", json={"inputs": texts, "top_k": 3, "model": "sparse/bert"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body) == 2 and all(len(vector) == 3 for vector in body)
    for vector in body:
        indices = [p["index"] for p in vector]
        assert indices == sorted(indices) and all(p["value"] > 0 for p in vector)
    assert int(resp.headers["x-prompt-tokens"]) >= 2 * len(texts)
    openai = client.post("/v3/embeddings", json={"model": "sparse/bert", "input": texts, "encoding_format": "sparse",
                                                 "top_k": 3}).json()
    assert [d["embedding"]["indices"] for d in openai["data"]] == [[p["index"] for p in v] for v in body]
    assert openai["usage"]["prompt_tokens"] == int(resp.headers["x-prompt-tokens"])
    card = client.get("/v3/models/sparse/bert").json()
    assert card["task"] == "sparse" and card["encoding_formats"] == ["sparse"]
    assert card["pruning"] == {"top_k": None, "threshold": 0.0}
