"""Request ids in every log line about a request (ovembed/serving/http/server.py's RequestIdFilter and
the REQUEST_ID context variable), including lines the engine logs from tasks and worker threads."""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from ovembed.serving.api import EmbedOptions, EmbedResult, Inputs
from ovembed.serving.grpc import grpc_predict_v2_pb2 as pb
from ovembed.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from ovembed.serving.http import server
from tests.serving.fakes import FakeRegistry, FakeServable, make_app
from tests.support.live_server import free_port, live_server

engine_log = logging.getLogger("ovembed.serving.engine")


class LoggingServable(FakeServable):
    """Logs from its own task and from a worker thread, as the real engine may."""

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None,
                    options: EmbedOptions | None = None) -> EmbedResult:
        engine_log.warning("embedding in the request's task")
        await asyncio.to_thread(engine_log.warning, "tokenizing in a worker thread")
        return await super().embed(inputs, truncate=truncate, options=options)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    handler = Keep()
    handler.addFilter(server.RequestIdFilter())
    engine_log.addHandler(handler)
    try:
        yield kept
    finally:
        engine_log.removeHandler(handler)


def test_engine_lines_carry_the_request_id(records: list[logging.LogRecord]) -> None:
    with TestClient(make_app(FakeRegistry(LoggingServable("fake")))) as client:
        first = client.post("/v3/embeddings", json={"model": "fake", "input": "x"}, headers={"x-request-id": "rid-a"})
        second = client.post("/api/embed", json={"model": "fake", "input": "y"})
    assert first.status_code == second.status_code == 200
    ids = [(r.getMessage(), r.request_id) for r in records]  # type: ignore[attr-defined]
    generated = second.headers["x-request-id"]
    assert ids == [("embedding in the request's task", "rid-a"), ("tokenizing in a worker thread", "rid-a"),
                   ("embedding in the request's task", generated), ("tokenizing in a worker thread", generated)]
    engine_log.warning("outside any request")
    assert records[-1].request_id is None  # type: ignore[attr-defined]


@pytest.mark.timeout(600)
def test_live_json_logs_carry_request_ids(minilm_repo: Path, tmp_path: Path) -> None:
    grpc_port = free_port()
    with live_server(minilm_repo, tmp_path / "server.log", "--log_format", "json", "--log_level", "DEBUG",
                     "--port", str(grpc_port)) as srv:
        resp = httpx.post(f"{srv.base_url}/v3/embeddings", json={"model": "minilm", "input": ["hello", "world"]},
                          headers={"x-request-id": "live-rid-1"}, timeout=60)
        assert resp.status_code == 200
        request = pb.ModelInferRequest(model_name="minilm")
        request.inputs.add(name="input", datatype="BYTES", shape=[1])
        request.raw_input_contents.append(struct.pack("<I", 5) + b"hello")
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
            stub.ModelInfer(request, timeout=60, metadata=(("x-request-id", "live-rid-2"),))
        deadline = time.monotonic() + 10
        while True:
            entries = [orjson.loads(line) for line in srv.log_text().splitlines() if line.startswith("{")]
            by_id = {rid: [e for e in entries if e.get("request_id") == rid] for rid in ("live-rid-1", "live-rid-2")}
            if all(len(found) >= 2 for found in by_id.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    for rid, found in by_id.items():
        loggers = {e["logger"] for e in found}
        assert {"ovembed.serving.engine", "ovembed.access"} <= loggers, (rid, found)
    engine = next(e for e in by_id["live-rid-1"] if e["logger"] == "ovembed.serving.engine")
    assert engine["message"].startswith("minilm: 2 input(s), ") and engine["level"] == "DEBUG"
    assert any('"gRPC ModelInfer" OK' in e["message"] for e in by_id["live-rid-2"])
