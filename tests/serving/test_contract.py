"""One contract, two registries: the fake used by the route tests and the real OpenVINO one.

Every case goes through the real app and asserts the status and the exact body, so the fake
cannot drift from what users get (messages included). The real side serves the packaged MiniLM
(384 dimensions, 256 tokens, vocabulary 30522) next to a model whose folder is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.serving.http.app import create_app
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

LONG_IDS = [1000] * 300  # over MiniLM's 256 tokens whatever the tokenizer
NOT_AVAILABLE = "The model 'broken' is not available: "


@pytest.fixture(scope="module", params=["fake", pytest.param("real", marks=pytest.mark.slow)])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    if request.param == "fake":
        fake = FakeServable("minilm", dimensions=384, max_length=256, truncate=False)
        app = make_app(FakeRegistry(fake, failed={"broken": "its folder is missing"}))
    else:
        minilm_repo: Path = request.getfixturevalue("minilm_repo")
        repo = tmp_path_factory.mktemp("contract")
        config = {"model_config_list": [
            {"config": {"name": "minilm", "base_path": str(minilm_repo.parent / "minilm")}},
            {"config": {"name": "broken", "base_path": str(repo / "missing")}},
        ]}
        (repo / "config.json").write_text(json.dumps(config), encoding="utf-8")
        app = create_app(ServeConfig(config_path=repo / "config.json", file_system_poll_wait_seconds=0),
                         environ={})
    with TestClient(app, base_url="http://localhost") as test_client:
        deadline = time.monotonic() + 120
        while test_client.get("/v2/models/minilm/ready").status_code != 200:
            assert time.monotonic() < deadline, "the registry did not get ready"
            time.sleep(0.05)
        yield test_client


def _openai_error(message: str, param: str | None, code: str | None,
                  type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@pytest.mark.parametrize(("body", "status", "expected"), [
    ({"model": "nope", "input": "x"}, 404,
     _openai_error("The model 'nope' does not exist", "model", "model_not_found")),
    ({"model": "minilm", "input": [LONG_IDS]}, 400,
     _openai_error("input[0] has 300 tokens; the model takes at most 256: "
                   "send truncate=true (or chunking) or shorten it", "input", "input_too_long")),
    ({"model": "minilm", "input": [[101, 30522]]}, 400,
     _openai_error("input[0] has token id 30522 outside the vocabulary (0..30521)", "input", None)),
    ({"model": "minilm", "input": [[5], [-1]]}, 400,
     _openai_error("'input[1]' contains a negative token id (-1)", "input", None)),
    ({"model": "minilm", "input": "x", "dimensions": 385}, 400,
     _openai_error("'dimensions' must be at most 384 for model 'minilm', got 385", "dimensions", None)),
])
def test_openai_errors(client: TestClient, body: dict[str, Any], status: int, expected: dict[str, Any]) -> None:
    resp = client.post("/v3/embeddings", json=body)
    assert (resp.status_code, resp.json()) == (status, expected)


def test_a_failed_model_is_503_with_its_reason(client: TestClient) -> None:
    resp = client.post("/v3/embeddings", json={"model": "broken", "input": "x"})
    assert resp.status_code == 503
    error = resp.json()["error"]
    assert error["message"].startswith(NOT_AVAILABLE) and len(error["message"]) > len(NOT_AVAILABLE)
    assert (error["type"], error["code"]) == ("service_unavailable", "model_not_ready")
    ready = client.get("/v2/models/broken/ready")
    assert ready.status_code == 503 and ready.json()["error"] == error["message"]
    server = client.get("/v2/health/ready")  # ready only when every model is AVAILABLE, saying which is not
    assert server.status_code == 503
    [broken] = server.json()["models"]
    assert broken["name"] == "broken" and broken["state"] == "UNAVAILABLE"
    assert error["message"] == f"{NOT_AVAILABLE}{broken['reason']}"


def test_embeddings_shape_usage_and_truncation(client: TestClient) -> None:
    body = client.post("/v3/embeddings", json={"model": "minilm", "input": [[101, 7592, 102], [2088]],
                                               "dimensions": 32}).json()
    assert [len(d["embedding"]) for d in body["data"]] == [32, 32]
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert body["model"] == "minilm"
    cut = client.post("/v3/embeddings", json={"model": "minilm", "input": [LONG_IDS], "truncate": True}).json()
    assert cut["usage"]["prompt_tokens"] == 256


def test_ollama_and_kserve_agree(client: TestClient) -> None:
    resp = client.post("/api/embed", json={"model": "nope", "input": "x"})
    assert (resp.status_code, resp.json()) == (404, {"error": "The model 'nope' does not exist"})
    long_text = " ".join(["word"] * 400)
    resp = client.post("/api/embed", json={"model": "minilm", "input": long_text, "truncate": False})
    assert (resp.status_code, resp.json()) == (400, {"error": "input length exceeds maximum context length"})
    ok = client.post("/api/embed", json={"model": "minilm:latest", "input": ["a", "b"]}).json()
    assert ok["model"] == "minilm:latest" and [len(v) for v in ok["embeddings"]] == [384, 384]
    meta = client.get("/v2/models/minilm").json()
    assert meta["name"] == "minilm" and meta["versions"] == ["1"]
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}]
    resp = client.get("/v2/models/minilm/versions/2")
    assert (resp.status_code, resp.json()) == (404, {"error": "The model 'minilm/versions/2' does not exist"})
    listed = client.get("/v3/models").json()["data"]  # serving models, then those that cannot serve
    assert [(m["id"], m.get("state")) for m in listed] == [("minilm", None), ("broken", "UNAVAILABLE")]
    assert listed[1]["reason"] == client.get("/v2/health/ready").json()["models"][0]["reason"]
