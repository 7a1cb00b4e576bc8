"""Prometheus metrics (ovembed/serving/metrics.py): counters move with REST, gRPC and batch traffic."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from ovembed import cli
from ovembed.config import ServeConfig
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.batching.policy import BatchPolicy
from ovembed.serving.grpc import grpc_predict_v2_pb2 as pb
from ovembed.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from ovembed.serving.grpc import server as grpc_server
from ovembed.serving.metrics import UNMATCHED, Metrics
from tests.serving.fakes import FakeRegistry, FakeServable, make_app
from tests.support.live_server import free_port, live_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: TestClient | httpx.Client) -> Samples:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=")
    return parse(resp.text)


def test_request_counters_move_with_traffic() -> None:
    fake = FakeServable("fake")
    fake.queue_depth = 7
    registry = FakeRegistry(fake, loading=["slow"], failed={"broken": "no IR"})
    with TestClient(make_app(registry)) as client:
        before = scrape(client)
        assert value(before, "ovembed_requests_total", model="fake", endpoint="/v3/embeddings", status="200") == 0
        for _ in range(3):
            assert client.post("/v3/embeddings", json={"model": "fake", "input": ["a b", "c"]}).status_code == 200
        assert client.post("/v1/embeddings", json={"model": "fake", "input": "x"}).status_code == 200
        assert client.post("/api/embed", json={"model": "fake:latest", "input": "x"}).status_code == 200
        assert client.post("/v3/embeddings", json={"model": "nope", "input": "x"}).status_code == 404
        assert client.post("/v3/embeddings", json={"model": "slow", "input": "x"}).status_code == 503
        assert client.get("/v2/models/fake/ready").status_code == 200
        assert client.get("/no/such/path").status_code == 404
        assert client.get("/v3/embeddings").status_code == 405
        after = scrape(client)

    def requests(model: str, endpoint: str, status: str) -> float:
        return value(after, "ovembed_requests_total", model=model, endpoint=endpoint, status=status)

    assert requests("fake", "/v3/embeddings", "200") == 3
    assert requests("fake", "/v1/embeddings", "200") == 1
    assert requests("fake", "/api/embed", "200") == 1  # ":latest" resolved to the served name
    assert requests("", "/v3/embeddings", "404") == 1  # unknown names never become label values
    assert requests("slow", "/v3/embeddings", "503") == 1
    assert requests("fake", "/v2/models/{model_path}", "200") == 1
    assert requests("", UNMATCHED, "404") == 1
    assert requests("", "/v3/embeddings", "405") == 1
    assert requests("", "/metrics", "200") == 1  # the first scrape
    assert value(after, "ovembed_request_duration_seconds_count", endpoint="/v3/embeddings") == 6
    assert value(after, "ovembed_request_duration_seconds_sum", endpoint="/v3/embeddings") > 0
    # Scrape-time gauges: every configured model's state, the servables' queues.
    assert value(after, "ovembed_model_state", model="fake", state="AVAILABLE") == 1
    assert value(after, "ovembed_model_state", model="fake", state="LOADING") == 0
    assert value(after, "ovembed_model_state", model="slow", state="LOADING") == 1
    assert value(after, "ovembed_model_state", model="broken", state="UNAVAILABLE") == 1
    assert value(after, "ovembed_queue_depth", model="fake") == 7


def test_metrics_are_open_and_unauthorized_requests_are_counted(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k\n")
    with TestClient(make_app(FakeRegistry(FakeServable("fake")), api_key_file=key)) as client:
        assert client.post("/v3/embeddings", json={"model": "fake", "input": "x"}).status_code == 401
        samples = scrape(client)  # no key needed
        assert value(samples, "ovembed_requests_total", model="", endpoint="/v3/embeddings", status="401") == 1


def test_no_metrics_means_404_and_nothing_counted() -> None:
    app = make_app(FakeRegistry(FakeServable("fake")), metrics_enable=False)
    with TestClient(app, base_url="http://localhost") as client:
        assert app.state.metrics is None
        resp = client.get("/metrics")
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == "not_found"


def test_each_app_has_its_own_registry() -> None:
    first = make_app(FakeRegistry(FakeServable("fake")))
    second = make_app(FakeRegistry(FakeServable("fake")))
    with TestClient(first) as one, TestClient(second) as two:
        one.post("/v3/embeddings", json={"model": "fake", "input": "x"})
        assert value(scrape(one), "ovembed_requests_total", model="fake", endpoint="/v3/embeddings",
                     status="200") == 1
        assert value(scrape(two), "ovembed_requests_total", model="fake", endpoint="/v3/embeddings",
                     status="200") == 0


class _Engine:
    """Answers each batch on the next loop iteration; fails when ``fail`` is set."""

    slots = 1
    dimensions = 4
    pad_lone = True

    def __init__(self) -> None:
        self.fail = False

    def start(self, input_ids: np.ndarray, attention_mask: np.ndarray,
              on_done: Callable[[np.ndarray | BaseException], None]) -> None:
        result: np.ndarray | BaseException = (RuntimeError("engine failed") if self.fail
                                              else np.ones((input_ids.shape[0], 4), np.float32))
        asyncio.get_running_loop().call_soon(on_done, result)


def test_batch_metrics_come_from_the_batcher() -> None:
    metrics = Metrics()
    engine = _Engine()

    async def main() -> None:
        batcher = Batcher(engine, BatchPolicy(pad_multiple=8), max_queue=100, name="m",
                          observer=metrics.batch_observer("m"))
        await batcher.submit([[1, 2, 3], [1, 2, 3, 4, 5]])  # one batch: 2 docs, 8 tokens, width 8
        engine.fail = True
        with pytest.raises(RuntimeError):
            await batcher.submit([[1] * 10])

    asyncio.run(asyncio.wait_for(main(), 10))
    samples = parse(metrics.exposition().decode())
    assert value(samples, "ovembed_tokens_total", model="m") == 8 + 10
    assert value(samples, "ovembed_batch_size_count", model="m") == 2
    assert value(samples, "ovembed_batch_size_sum", model="m") == 3
    assert value(samples, "ovembed_batch_tokens_sum", model="m") == 2 * 8 + 1 * 16  # padded: 10 -> 16
    assert value(samples, "ovembed_inference_duration_seconds_count", model="m") == 1  # the failed one is apart
    assert value(samples, "ovembed_batch_failures_total", model="m") == 1


def test_refusals_by_wait_and_expired_deadlines_are_counted() -> None:
    metrics = Metrics()
    observer = metrics.batch_observer("m")
    observer.refused_by_wait()
    observer.refused_by_wait()
    observer.deadline_expired()
    samples = parse(metrics.exposition().decode())
    assert value(samples, "ovembed_refused_by_wait_total", model="m") == 2
    assert value(samples, "ovembed_deadline_expired_total", model="m") == 1


def test_grpc_requests_are_counted() -> None:
    metrics = Metrics()
    registry = FakeRegistry(FakeServable("minilm"))

    async def main() -> None:
        server, port = await grpc_server.start(registry, host="127.0.0.1", port=0, api_key=None, max_inputs=16,
                                               max_message_bytes=1 << 20, metrics=metrics)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
                request = pb.ModelInferRequest(model_name="minilm")
                request.inputs.add(name="input", datatype="BYTES", shape=[1])
                request.raw_input_contents.append(struct.pack("<I", 5) + b"hello")
                await stub.ModelInfer(request)
                with pytest.raises(grpc.aio.AioRpcError):  # (ModelReady answers ready=false instead)
                    await stub.ModelMetadata(pb.ModelMetadataRequest(name="nope"))
        finally:
            await grpc_server.stop(server, grace=1)

    asyncio.run(asyncio.wait_for(main(), 30))
    samples = parse(metrics.exposition().decode())
    infer = "/inference.GRPCInferenceService/ModelInfer"
    assert value(samples, "ovembed_requests_total", model="minilm", endpoint=infer, status="OK") == 1
    assert value(samples, "ovembed_requests_total", model="", endpoint="/inference.GRPCInferenceService/ModelMetadata",
                 status="NOT_FOUND") == 1
    assert value(samples, "ovembed_request_duration_seconds_count", endpoint=infer) == 1


@pytest.mark.parametrize(("argv", "env", "expected"), [
    ([], None, True),
    (["--no-metrics"], None, False),
    (["--no-metrics_enable"], None, False),
    (["--no-metrics-enable"], None, False),
    (["--metrics_enable"], "0", True),  # the flag beats the environment
    ([], "false", False),
])
def test_metrics_flags(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str | None, expected: bool) -> None:
    if env is not None:
        monkeypatch.setenv("OVEMBED_METRICS_ENABLE", env)
    args = cli.build_parser().parse_args(["serve", "--config_path", "c.json", *argv])
    cfg: ServeConfig = cli.build_config(ServeConfig, args)
    assert cfg.metrics_enable is expected


@pytest.mark.timeout(600)
def test_live_metrics_count_rest_grpc_and_batches(minilm_repo: Path, tmp_path: Path) -> None:
    grpc_port = free_port()
    with live_server(minilm_repo, tmp_path / "server.log", "--port", str(grpc_port)) as server:
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            for text in ("hello world", "metrics move with traffic", "a third request"):
                resp = client.post("/v3/embeddings", json={"model": "minilm", "input": [text, text + " again"]})
                assert resp.status_code == 200
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
                request = pb.ModelInferRequest(model_name="minilm")
                request.inputs.add(name="input", datatype="BYTES", shape=[1])
                request.raw_input_contents.append(struct.pack("<I", 5) + b"hello")
                stub.ModelInfer(request, timeout=60)
            samples = scrape(client)
        log = server.log_text()
    assert value(samples, "ovembed_requests_total", model="minilm", endpoint="/v3/embeddings", status="200") == 3
    assert value(samples, "ovembed_requests_total", model="minilm",
                 endpoint="/inference.GRPCInferenceService/ModelInfer", status="OK") == 1
    # 7 documents went through the engine: ids include [CLS] and [SEP]
    assert value(samples, "ovembed_batch_size_sum", model="minilm") == 7
    assert value(samples, "ovembed_tokens_total", model="minilm") >= 7 * 3
    assert value(samples, "ovembed_batch_tokens_sum", model="minilm") >= value(samples, "ovembed_tokens_total",
                                                                              model="minilm")
    assert value(samples, "ovembed_inference_duration_seconds_count", model="minilm") >= 1
    assert value(samples, "ovembed_model_state", model="minilm", state="AVAILABLE") == 1
    assert value(samples, "ovembed_queue_depth", model="minilm") == 0
    assert "model minilm device CPU (" in log  # what `ovembed devices` says, per model


def test_cache_metrics_come_from_the_registry() -> None:
    from ovembed.serving.api import CacheStats

    registry = FakeRegistry(FakeServable("m"))
    with TestClient(make_app(registry)) as client:
        off = scrape(client)
        assert not any(name.startswith("ovembed_cache") for name, _ in off)
        registry.cache = CacheStats(hits=7, misses=3, entries=2, bytes=1600, max_bytes=4096)
        on = scrape(client)
        assert value(on, "ovembed_cache_hits_total") == 7 and value(on, "ovembed_cache_misses_total") == 3
        assert value(on, "ovembed_cache_bytes") == 1600 and value(on, "ovembed_cache_entries") == 2
