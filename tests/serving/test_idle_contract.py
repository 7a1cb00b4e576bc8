"""The UNLOADED state, one contract for the fake registry and the real one (MiniLM, fake clock).

A model unloaded while idle is still listed (``/v3/models``, ``/v1/config``) as UNLOADED, its own readiness
(``/v2/models/<name>/ready``) is 503 with the reason while the server's (``/v2/health/ready``) stays 200
(it serves on demand), and the next request loads it and answers as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.serving.http.app import create_app
from ovembed.serving.models.registry import ModelRegistry
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

Unload = Callable[[], None]
UNLOADED_MESSAGE = "The model 'minilm' was unloaded while idle; the next request loads it"


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.slow)])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, Unload]]:
    if request.param == "fake":
        fake = FakeRegistry(FakeServable("minilm", dimensions=384, max_length=256, truncate=False, matryoshka=None))
        with TestClient(make_app(fake), base_url="http://localhost") as client:
            yield client, lambda: client.portal.call(fake.unload_idle)  # type: ignore[union-attr]
        return
    minilm_repo: Path = request.getfixturevalue("minilm_repo")
    config = {"model_config_list": [{"config": {"name": "minilm", "base_path": str(minilm_repo.parent / "minilm"),
                                                "idle_unload_seconds": 600}}]}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    cfg = ServeConfig(config_path=tmp_path / "config.json", file_system_poll_wait_seconds=0)
    registry = ModelRegistry.from_serve_config(cfg)
    now = [0.0]
    registry.clock = lambda: now[0]

    def unload() -> None:
        now[0] += 600
        assert client.portal.call(registry.unload_idle) == ["minilm"]  # type: ignore[union-attr]

    with TestClient(create_app(cfg, registry, environ={}), base_url="http://localhost") as client:
        deadline = time.monotonic() + 120
        while client.get("/v2/models/minilm/ready").status_code != 200:
            assert time.monotonic() < deadline, "the registry did not get ready"
            time.sleep(0.05)
        yield client, unload


def test_an_unloaded_model_is_listed_not_ready_itself_and_the_server_stays_ready(
        served: tuple[TestClient, Unload]) -> None:
    client, unload = served
    unload()
    [card] = client.get("/v3/models").json()["data"]
    assert (card["id"], card["state"]) == ("minilm", "UNLOADED")
    assert card["reason"].endswith("the next request loads it")
    [version] = client.get("/v1/config").json()["minilm"]["model_version_status"]
    assert (version["state"], version["status"]["error_code"]) == ("UNLOADED", "OK")
    ready = client.get("/v2/models/minilm/ready")
    assert ready.status_code == 503 and ready.json()["error"] == UNLOADED_MESSAGE
    assert ready.headers["retry-after"] == "5"
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/api/ps").json() == {"models": []}
    assert [m["name"] for m in client.get("/api/tags").json()["models"]] == ["minilm"]


def test_the_next_request_loads_it_and_answers_the_same_vector(served: tuple[TestClient, Unload]) -> None:
    client, unload = served
    body = {"model": "minilm", "input": "a request after a quiet night"}
    before = client.post("/v3/embeddings", json=body)
    assert before.status_code == 200
    unload()
    after = client.post("/v3/embeddings", json=body)  # waits for the load (--load_wait_seconds)
    assert after.status_code == 200
    assert after.json()["data"] == before.json()["data"]
    assert client.get("/v2/models/minilm/ready").status_code == 200
    [card] = client.get("/v3/models").json()["data"]
    assert "state" not in card and card["id"] == "minilm"
    assert [m["name"] for m in client.get("/api/ps").json()["models"]] == ["minilm"]


def test_ollama_keep_alive_zero_unloads_after_the_request(served: tuple[TestClient, Unload]) -> None:
    client, _ = served
    resp = client.post("/api/embed", json={"model": "minilm", "input": "x", "keep_alive": 0})
    assert resp.status_code == 200 and len(resp.json()["embeddings"][0]) == 384
    deadline = time.monotonic() + 60
    while client.get("/v1/config").json()["minilm"]["model_version_status"][0]["state"] != "UNLOADED":
        assert time.monotonic() < deadline, "keep_alive 0 did not unload the model"
        time.sleep(0.05)
    again = client.post("/api/embed", json={"model": "minilm", "input": "x", "keep_alive": "5m"})
    assert again.status_code == 200 and again.json()["embeddings"] == resp.json()["embeddings"]


@pytest.mark.parametrize(("value", "message"), [
    ("soon", 'time: invalid duration "soon"'),
    ("300", 'time: invalid duration "300"'),  # Go durations need a unit; numbers are seconds
    (True, "unsupported duration type: 'bool'"),
    ([1], "unsupported duration type: 'list'"),
])
def test_a_bad_keep_alive_is_a_400(served: tuple[TestClient, Unload], value: object, message: str) -> None:
    client, _ = served
    resp = client.post("/api/embed", json={"model": "minilm", "input": "x", "keep_alive": value})
    assert resp.status_code == 400 and resp.json()["error"].startswith(message)
