"""Live configuration reload (ovembed/serving/models/reload.py) over a copy of the MiniLM repository:
add, remove, broken files, graph and model-file changes; in process and against a live server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.testclient import TestClient

from ovembed.config import Pooling, ServeConfig
from ovembed.errors import ModelNotFound
from ovembed.graphs import read_graph, write_graph
from ovembed.repository import remove_model, upsert_model
from ovembed.serving.http.app import create_app
from ovembed.serving.models.registry import ModelRegistry
from ovembed.serving.models.reload import Reloader, fingerprint
from tests.serving.fakes import FakeRegistry, FakeServable, make_app
from tests.support.live_server import live_server

T = TypeVar("T")
LONG = " ".join(["reloading must not drop requests that are already being served"] * 20)

pytestmark = pytest.mark.timeout(600)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 300))


@pytest.fixture
def repo(minilm_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the MiniLM repository; returns its config.json."""
    target = tmp_path / "repo"
    shutil.copytree(minilm_repo.parent, target)
    return target / "config.json"


def set_pooling(model_dir: Path, pooling: Pooling) -> None:
    write_graph(model_dir, dataclasses.replace(read_graph(model_dir), pooling=pooling))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """The real app (ModelRegistry) with its lifespan, called in process; every model loaded."""
    app = create_app(ServeConfig(**options), environ={})
    async with app.router.lifespan_context(app):
        assert await app.state.registry.wait_ready(120)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost", timeout=120) as client:
            yield app, client


async def embed(client: httpx.AsyncClient, model: str, text: str = "hello world") -> np.ndarray:
    resp = await client.post("/v3/embeddings", json={"model": model, "input": text})
    assert resp.status_code == 200, resp.text
    return np.array(resp.json()["data"][0]["embedding"], np.float32)


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], timeout: float, what: str) -> float:
    """Seconds until ``check()`` holds; fails after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(0.1)
    pytest.fail(f"not within {timeout} s: {what}")


# -- change detection ---------------------------------------------------------------------


def test_fingerprint_follows_graph_content_and_model_files(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    graph = model / "graph.pbtxt"
    graph.write_text('node { calculator: "EmbeddingsCalculatorOV" }')
    (model / "openvino_model.bin").write_bytes(b"weights")
    first = fingerprint(model)
    assert fingerprint(model) == first
    graph.unlink()  # rewritten with the same content (new inode, new mtime): no change
    graph.write_text('node { calculator: "EmbeddingsCalculatorOV" }')
    (model / ".graph.pbtxt.swp").write_text("editor noise")  # hidden files are ignored
    assert fingerprint(model) == first
    graph.write_text('node { calculator: "EmbeddingsCalculatorOV" } ')
    second = fingerprint(model)
    assert second != first
    os.utime(model / "openvino_model.bin", ns=(1, 1))  # a model file re-written
    assert fingerprint(model) != second
    third = fingerprint(model)
    fresh = tmp_path / "fresh"  # a re-export renamed into place: same files, new folder
    shutil.copytree(model, fresh, copy_function=shutil.copy2)
    shutil.rmtree(model)
    fresh.rename(model)
    assert fingerprint(model) != third
    shutil.rmtree(model)
    assert fingerprint(model) == ("no graph", ("missing",))


# -- in process -------------------------------------------------------------------------


def test_add_then_remove_a_model_while_serving(repo: Path) -> None:
    async def main() -> None:
        async with serving(config_path=repo, file_system_poll_wait_seconds=0.2) as (_, client):
            before = await embed(client, "minilm")
            upsert_model(repo, "second", repo.parent / "minilm")

            health: list[int] = []

            async def second_ready() -> bool:
                health.append((await client.get("/v2/health/ready")).status_code)
                return (await client.get("/v2/models/second/ready")).status_code == 200

            await eventually(second_ready, 60, "the added model is ready")
            assert set(health) == {200}  # the server stayed ready while 'second' loaded
            assert cosine(await embed(client, "second"), before) > 0.9999
            assert sorted((await client.get("/v1/config")).json()) == ["minilm", "second"]

            remove_model(repo, "second")

            async def second_gone() -> bool:
                resp = await client.post("/v3/embeddings", json={"model": "second", "input": "x"})
                return resp.status_code == 404

            await eventually(second_gone, 30, "the removed model answers 404")
            assert (await client.get("/v2/models/second/ready")).status_code == 404
            await embed(client, "minilm")  # the other model never noticed
            metrics = (await client.get("/metrics")).text
        changed = [s.value for f in text_string_to_metric_families(metrics) for s in f.samples
                   if s.name == "ovembed_config_reloads_total" and s.labels == {"result": "changed"}]
        assert changed == [2.0]

    run(main())


def test_a_removed_model_finishes_its_in_flight_requests(repo: Path) -> None:
    async def main() -> None:
        cfg = ServeConfig(config_path=repo, file_system_poll_wait_seconds=0)
        registry = ModelRegistry.from_serve_config(cfg)
        reloader = Reloader(cfg, registry)
        await registry.start()
        reloader.snapshot()
        assert await registry.wait_ready(120)
        servable = registry.get("minilm")
        tasks = [asyncio.create_task(servable.embed([f"{LONG} {i}-{j}" for j in range(24)])) for i in range(4)]
        for _ in range(2000):  # until documents wait in the batcher (tokenized, not yet run)
            if servable.queue_depth > 0:
                break
            await asyncio.sleep(0.005)
        remove_model(repo, "minilm")
        assert not all(t.done() for t in tasks), "the requests finished too soon to test draining"
        result = await reloader.reload()
        assert result.removed == ("minilm",) and result.changed
        for task in tasks:  # every request that had reached the model completed
            assert (await task).embeddings.shape == (24, 384)
        with pytest.raises(ModelNotFound):
            registry.get("minilm")
        await registry.stop(5)

    run(main())


def test_broken_files_change_nothing_that_serves(repo: Path) -> None:
    async def main() -> None:
        async with serving(config_path=repo, file_system_poll_wait_seconds=0) as (_, client):
            before = await embed(client, "minilm")
            good = repo.read_text()

            repo.write_text('{"model_config_list": [')  # bad JSON
            resp = await client.post("/v1/config/reload")
            assert resp.status_code == 500
            assert "not valid JSON" in resp.json()["error"]
            status = (await client.get("/v1/config")).json()
            assert "not valid JSON" in status["config_error"]["message"]
            assert status["minilm"]["model_version_status"][0]["state"] == "AVAILABLE"
            assert cosine(await embed(client, "minilm"), before) > 0.99999

            # A model whose folder is missing: its own error, nothing else changes.
            data = json.loads(good)
            data["model_config_list"].append({"config": {"name": "ghost", "base_path": "no-such-folder"}})
            repo.write_text(json.dumps(data))
            assert (await client.post("/v1/config/reload")).status_code == 201
            status = (await client.get("/v1/config")).json()
            assert "config_error" not in status  # config.json is readable again
            ghost = status["ghost"]["model_version_status"][0]
            assert ghost["state"] == "UNAVAILABLE" and "does not exist" in ghost["status"]["error_message"]
            assert (await client.post("/v3/embeddings", json={"model": "ghost", "input": "x"})).status_code == 503

            # A bad option in the serving model's graph: the old version keeps serving.
            graph = repo.parent / "minilm" / "graph.pbtxt"
            graph.write_text(graph.read_text().replace("pooling: MEAN", "pooling: FOO"))
            assert (await client.post("/v1/config/reload")).status_code == 201
            minilm = (await client.get("/v1/config")).json()["minilm"]["model_version_status"][0]
            assert minilm["state"] == "AVAILABLE" and minilm["version"] == "1"
            assert 'Pooling" has no value named FOO' in minilm["status"]["error_message"]
            assert cosine(await embed(client, "minilm"), before) > 0.99999

            nothing = await client.post("/v1/config/reload")  # no change since the last pass
            assert nothing.status_code == 200 and "minilm" in nothing.json()

    run(main())


def test_pooling_change_reloads_without_failed_requests(repo: Path) -> None:
    async def main() -> None:
        async with serving(config_path=repo, file_system_poll_wait_seconds=0) as (_, client):
            mean = await embed(client, "minilm", LONG)
            statuses: list[int] = []
            stop = asyncio.Event()

            async def traffic() -> None:
                while not stop.is_set():
                    resp = await client.post("/v3/embeddings", json={"model": "minilm", "input": [LONG, "short"]})
                    statuses.append(resp.status_code)

            senders = [asyncio.create_task(traffic()) for _ in range(3)]
            await asyncio.sleep(0.3)
            set_pooling(repo.parent / "minilm", Pooling.CLS)
            resp = await client.post("/v1/config/reload")
            assert resp.status_code == 201
            assert resp.json()["minilm"]["model_version_status"][0]["version"] == "2"
            await asyncio.sleep(0.3)  # traffic on the new version too
            stop.set()
            await asyncio.gather(*senders)
            cls = await embed(client, "minilm", LONG)
        assert len(statuses) > 6 and set(statuses) == {200}, statuses
        assert np.linalg.norm(cls) == pytest.approx(1.0, abs=1e-4)
        assert cosine(cls, mean) < 0.99  # CLS pooling: another vector

    run(main())


def test_single_model_mode_follows_its_folder(repo: Path) -> None:
    model_dir = repo.parent / "minilm"

    async def main() -> None:
        async with serving(model_path=model_dir, file_system_poll_wait_seconds=0.2) as (app, client):
            registry = app.state.registry
            before = await embed(client, "minilm")
            later = time.time() + 5  # a re-export rewrote the weights file
            os.utime(model_dir / "openvino_model.bin", (later, later))

            async def reloaded() -> bool:
                return bool(registry.status("minilm").version == 2)

            await eventually(reloaded, 60, "a model file change reloads the model")
            assert cosine(await embed(client, "minilm"), before) > 0.99999

    run(main())


def test_reload_route_needs_the_key_and_works_without_a_reloadable_registry(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k\n")
    with TestClient(make_app(FakeRegistry(FakeServable("fake")), api_key_file=key)) as client:
        assert client.post("/v1/config/reload").status_code == 401
        resp = client.post("/v1/config/reload", headers={"Authorization": "Bearer k"})
        assert resp.status_code == 200  # nothing can change: the fake registry is fixed
        assert resp.json()["fake"]["model_version_status"][0]["state"] == "AVAILABLE"


# -- live -------------------------------------------------------------------------------


def test_live_reload(repo: Path, tmp_path: Path) -> None:
    """The issue's list against a real server: add -> ready within seconds; remove -> 404;
    broken config.json -> the models keep answering; pooling change -> new vectors, no failures."""
    with live_server(repo, tmp_path / "server.log", "--file_system_poll_wait_seconds", "0.5") as server, \
            httpx.Client(base_url=server.base_url, timeout=60) as client:

        def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
            start = time.monotonic()
            while time.monotonic() - start < timeout:
                if check():
                    return time.monotonic() - start
                time.sleep(0.1)
            pytest.fail(f"not within {timeout} s: {what}\n{server.log_text()}")

        def vector(model: str = "minilm") -> np.ndarray:
            resp = client.post("/v3/embeddings", json={"model": model, "input": LONG})
            assert resp.status_code == 200, resp.text
            return np.array(resp.json()["data"][0]["embedding"], np.float32)

        mean = vector()
        upsert_model(repo, "second", repo.parent / "minilm")
        took = wait_for(lambda: client.get("/v2/models/second/ready").status_code == 200, 30, "'second' ready")
        assert took < 30
        assert cosine(vector("second"), mean) > 0.9999

        good = repo.read_text()
        repo.write_text("{ not json")
        wait_for(lambda: "config_error" in client.get("/v1/config").json(), 10, "config error shown")
        time.sleep(1.0)  # a few more polls of the broken file
        assert cosine(vector(), mean) > 0.99999 and cosine(vector("second"), mean) > 0.9999

        repo.write_text(good)
        remove_model(repo, "second")
        wait_for(lambda: client.post("/v3/embeddings", json={"model": "second", "input": "x"}).status_code == 404,
                 10, "'second' removed")
        assert "config_error" not in client.get("/v1/config").json()

        statuses: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=server.base_url, timeout=60) as own:
                while not stop.is_set():
                    statuses.append(own.post("/v3/embeddings", json={"model": "minilm", "input": LONG}).status_code)

        senders = [threading.Thread(target=traffic) for _ in range(2)]
        for sender in senders:
            sender.start()
        try:
            set_pooling(repo.parent / "minilm", Pooling.CLS)
            wait_for(lambda: cosine(vector(), mean) < 0.99, 60, "CLS vectors after the graph change")
            time.sleep(0.5)
        finally:
            stop.set()
            for sender in senders:
                sender.join(60)
        assert statuses and set(statuses) == {200}, statuses
        log = server.log_text()
    assert "configuration not reloaded" in log and "Traceback" not in log
