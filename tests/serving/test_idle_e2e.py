"""Idle unloading on a live ``ovembed serve``: a model unloads after its idle timeout and the next request
loads it and answers the same vector; Ollama's ``keep_alive: 0`` unloads a model right after the request.

Two entries share the MiniLM folder: ``resting`` unloads after 1 s idle (its config.json entry overrides
``--idle_unload_seconds 3600``), ``kept`` never does on its own (entry 0). The test waits for states, never
for a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import LiveServer, live_server

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def server(minilm_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("idle")
    folder = str(minilm_repo.parent / "minilm")
    config = {"model_config_list": [
        {"config": {"name": "resting", "base_path": folder, "idle_unload_seconds": 1}},
        {"config": {"name": "kept", "base_path": folder, "idle_unload_seconds": 0}},
    ]}
    (tmp / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with live_server(tmp / "config.json", tmp / "server.log", "--idle_unload_seconds", "3600",
                     "--load_wait_seconds", "120", "--file_system_poll_wait_seconds", "0") as running:
        yield running


def _state(client: httpx.Client, name: str) -> str:
    return str(client.get("/v1/config").json()[name]["model_version_status"][0]["state"])


def _wait_for(client: httpx.Client, name: str, state: str) -> None:
    deadline = time.monotonic() + 120
    while _state(client, name) != state:
        assert time.monotonic() < deadline, f"model {name} never became {state}"
        time.sleep(0.1)


def test_an_idle_model_unloads_and_the_next_request_reloads_it(server: LiveServer) -> None:
    body = {"model": "resting", "input": ["an idle model", "comes back"]}
    with httpx.Client(base_url=server.base_url, timeout=180) as client:
        first = client.post("/v3/embeddings", json=body)
        assert first.status_code == 200
        _wait_for(client, "resting", "UNLOADED")
        cards = {c["id"]: c for c in client.get("/v3/models").json()["data"]}
        assert cards["resting"]["state"] == "UNLOADED" and "state" not in cards["kept"]
        assert client.get("/v2/health/ready").status_code == 200
        assert client.get("/v2/models/resting/ready").status_code == 503
        assert [m["name"] for m in client.get("/api/ps").json()["models"]] == ["kept"]
        again = client.post("/v3/embeddings", json=body)
        assert again.status_code == 200
        assert again.json()["data"] == first.json()["data"]
        assert "model resting unloaded after" in server.log_text()


def test_keep_alive_zero_unloads_after_the_request(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=180) as client:
        resp = client.post("/api/embed", json={"model": "kept", "input": "x", "keep_alive": 0})
        assert resp.status_code == 200 and len(resp.json()["embeddings"][0]) == 384
        _wait_for(client, "kept", "UNLOADED")
        legacy = client.post("/api/embeddings", json={"model": "kept", "prompt": "x", "keep_alive": "-1"})
        assert legacy.status_code == 400  # "-1" has no unit: Go's ParseDuration refuses it, as Ollama does
        legacy = client.post("/api/embeddings", json={"model": "kept", "prompt": "x", "keep_alive": -1})
        assert legacy.status_code == 200
        assert legacy.json()["embedding"] == resp.json()["embeddings"][0]
        assert _state(client, "kept") == "AVAILABLE"
