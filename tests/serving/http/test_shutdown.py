"""Graceful shutdown (ovembed/serving/http/server.py, app.py, grpc/server.py): SIGTERM with requests
in flight on HTTP and gRPC lets every one of them finish, refuses new connections, exits 0."""

from __future__ import annotations

import signal
import struct
import subprocess
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ovembed.serving.grpc import grpc_predict_v2_pb2 as pb
from ovembed.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.support.live_server import LiveServer, free_port, start_server, stop_server

LONG = " ".join(["a graceful shutdown lets every request that is already running finish"] * 18)
REST_REQUESTS, REST_DOCS, GRPC_DOCS = 4, 12, 8  # ~5 s of work for two cores

pytestmark = pytest.mark.timeout(600)


def _submitted_docs(server: LiveServer) -> float:
    """Documents that reached the batcher: dispatched (batch sizes) plus still queued."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("ovembed_batch_size_sum", "ovembed_queue_depth"):
                total += sample.value
    return total


def _wait_exit(server: LiveServer, timeout: float) -> int:
    try:
        return server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        stop_server(server, 1)
        pytest.fail(f"the server did not exit within {timeout} s:\n{server.log_text()}")


def test_sigterm_lets_in_flight_requests_finish_and_exits_0(minilm_repo: Path, tmp_path: Path) -> None:
    grpc_port = free_port()
    server = start_server(minilm_repo, tmp_path / "server.log", "--port", str(grpc_port),
                          "--graceful_timeout", "120")
    outcomes: list[object] = []

    def rest(i: int) -> None:
        try:
            with httpx.Client(timeout=120) as client:
                resp = client.post(f"{server.base_url}/v3/embeddings", json={
                    "model": "minilm", "input": [f"{LONG} {i}-{j}" for j in range(REST_DOCS)]})
            outcomes.append((resp.status_code, len(resp.json()["data"])))
        except Exception as exc:  # a dropped request: recorded, the assertion shows it
            outcomes.append(exc)

    def grpc_infer() -> None:
        texts = [f"{LONG} grpc-{j}".encode() for j in range(GRPC_DOCS)]
        request = pb.ModelInferRequest(model_name="minilm")
        request.inputs.add(name="input", datatype="BYTES", shape=[len(texts)])
        request.raw_input_contents.append(b"".join(struct.pack("<I", len(t)) + t for t in texts))
        try:
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
                response = stub.ModelInfer(request, timeout=120)
            outcomes.append(("grpc", list(response.outputs[0].shape)))
        except Exception as exc:
            outcomes.append(exc)

    senders = [threading.Thread(target=rest, args=(i,)) for i in range(REST_REQUESTS)]
    senders.append(threading.Thread(target=grpc_infer))
    try:
        for sender in senders:
            sender.start()
        total = REST_REQUESTS * REST_DOCS + GRPC_DOCS
        deadline = time.monotonic() + 60
        while _submitted_docs(server) < total:  # every request has reached the engine
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.05)
        assert len(outcomes) < len(senders), "the work finished before SIGTERM: make it longer"
        server.process.send_signal(signal.SIGTERM)

        refused = False  # the listening socket closes at once, while the requests still run
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not refused:
            try:
                httpx.get(f"{server.base_url}/v2/health/live", timeout=1)
                time.sleep(0.05)
            except httpx.TransportError:
                refused = True
        draining = len(outcomes) < len(senders)

        for sender in senders:
            sender.join(120)
        code = _wait_exit(server, 120)
    finally:
        stop_server(server, 5)
    log = server.log_text()
    assert refused, log
    assert draining, "every request had finished before new connections were refused"
    assert sorted(outcomes, key=str) == sorted([(200, REST_DOCS)] * REST_REQUESTS + [("grpc", [GRPC_DOCS, 384])],
                                               key=str), log
    assert code == 0, log
    assert "SIGTERM: no new connections; finishing in-flight requests" in log
    assert "KServe gRPC stopped" in log and "Application shutdown complete" in log
    assert "Traceback" not in log


def test_sigint_on_an_idle_server_exits_0(minilm_repo: Path, tmp_path: Path) -> None:
    server = start_server(minilm_repo, tmp_path / "server.log")
    try:
        server.process.send_signal(signal.SIGINT)
        code = _wait_exit(server, 60)
    finally:
        stop_server(server, 5)
    assert code == 0, server.log_text()
    assert "SIGINT: no new connections" in server.log_text()


def test_graceful_timeout_bounds_the_wait(minilm_repo: Path, tmp_path: Path) -> None:
    """Work that cannot finish within --graceful_timeout is cancelled with a 503 the client can
    retry elsewhere; the process ends once the batch the engine is running returns."""
    server = start_server(minilm_repo, tmp_path / "server.log", "--graceful_timeout", "1")
    answers: list[httpx.Response] = []

    def heavy() -> None:
        answers.append(httpx.post(f"{server.base_url}/v3/embeddings", timeout=120, json={
            "model": "minilm", "input": [f"{LONG} {j}" for j in range(200)]}))  # ~15 s of work

    sender = threading.Thread(target=heavy)
    try:
        sender.start()
        deadline = time.monotonic() + 60
        while _submitted_docs(server) < 200:
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.05)
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = _wait_exit(server, 60)
        took = time.monotonic() - start
        sender.join(30)
    finally:
        stop_server(server, 5)
    log = server.log_text()
    assert code == 0, log
    # 1 s of grace, then the batch OpenVINO is running (<= 64 docs, ~5 s on two cores) must end.
    assert took < 30, f"{took:.1f} s to stop with --graceful_timeout 1\n{log}"
    assert len(answers) == 1 and answers[0].status_code == 503, log
    assert answers[0].json()["error"] == {"message": "The server is shutting down; retry the request",
                                          "type": "service_unavailable", "param": None, "code": "shutting_down"}
    assert "the server is stopping and --graceful_timeout ran out" in log
    assert "Traceback" not in log
