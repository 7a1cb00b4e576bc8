"""OpenTelemetry traces (ovembed/serving/tracing.py): settings from the flag and OTEL_* variables, the
server span and its children over HTTP and gRPC, W3C traceparent propagation, sampling, a real OTLP
export, and nothing imported or exported when off."""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import grpc
import numpy as np
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from ovembed.config import ServeConfig
from ovembed.errors import ConfigError
from ovembed.serving import tracing
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.batching.policy import BatchPolicy
from ovembed.serving.grpc import server as grpc_server
from ovembed.serving.http.app import create_app
from tests.serving.batching.test_batcher import FakeEngine
from tests.serving.fakes import TEST_HOST, FakeRegistry, FakeServable
from tests.serving.grpc.test_grpc import infer_request, make_stub

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def by_name(spans: Sequence[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        out.setdefault(span.name, []).append(span)
    return out


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[str]:
    return sorted(s.name for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def fake_app(exporter: InMemorySpanExporter | None, environ: dict[str, str] | None = None, **cfg: Any) -> Any:
    config = ServeConfig(config_path=Path("unused/config.json"), allowed_hosts=f"{TEST_HOST},localhost", **cfg)
    tracer = tracing.for_exporter(exporter) if exporter is not None else None
    return create_app(config, FakeRegistry(FakeServable("minilm")), environ=environ or {}, tracer=tracer)


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "env", "expected"), [
    (None, {}, None),
    (None, {"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, None),  # they tune, not turn on
    ("http://collector:4317", {}, tracing.Settings(("otlp",), "http://collector:4317", "grpc")),
    (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
     tracing.Settings(("otlp",), None, "http/protobuf")),
    (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317/"}, tracing.Settings(("otlp",), None, "grpc")),
    (None, {"OTEL_TRACES_EXPORTER": "console"}, tracing.Settings(("console",), None, "grpc")),
    (None, {"OTEL_TRACES_EXPORTER": "otlp, console", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, tracing.Settings(("otlp", "console"), None, "http/protobuf")),
    ("http://collector:4317", {"OTEL_TRACES_EXPORTER": "none"}, None),
    ("http://collector:4317", {"OTEL_SDK_DISABLED": "true"}, None),
    ("", {}, None),
])
def test_settings_from_the_flag_and_otel_variables(flag: str | None, env: dict[str, str],
                                                   expected: tracing.Settings | None) -> None:
    assert tracing.settings(flag, env) == expected


@pytest.mark.parametrize(("env", "message"), [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: ovembed exports traces with otlp, console (or none), "
                                         "not zipkin"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
     "OTEL_EXPORTER_OTLP_PROTOCOL must be one of grpc, http/protobuf, got 'http/json'"),
])
def test_settings_refuse_what_ovembed_does_not_offer(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        tracing.settings(None, env)
    assert str(info.value) == message


def test_the_flag_is_a_serve_option_and_env_variable() -> None:
    from ovembed.cli import build_parser

    args = build_parser().parse_args(["serve", "--config_path", "c.json", "--otlp_endpoint", "http://c:4317"])
    assert args.otlp_endpoint == "http://c:4317"


def test_an_endpoint_without_a_scheme_is_refused_naming_the_flag() -> None:
    with pytest.raises(ConfigError) as info:
        ServeConfig(config_path=Path("c.json"), otlp_endpoint="collector:4317")
    assert str(info.value) == "--otlp_endpoint must be a URL like http://otel-collector:4317, got 'collector:4317'"


@pytest.mark.parametrize("missing", ["opentelemetry.sdk.trace.export",
                                     "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"])
def test_asking_for_tracing_without_the_extra_names_the_install(monkeypatch: pytest.MonkeyPatch,
                                                                missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # import fails
    with pytest.raises(ConfigError) as info:
        tracing.from_config("http://collector:4317", {})
    assert str(info.value) == ("tracing is on (--otlp_endpoint or OTEL_* variables) but OpenTelemetry is not "
                               "installed: pip install 'ovembed[otel]'")


def test_service_name_defaults_to_ovembed_and_follows_otel_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert tracing.for_exporter(InMemorySpanExporter()).provider.resource.attributes["service.name"] == "ovembed"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "embedder-eu")
    assert tracing.for_exporter(InMemorySpanExporter()).provider.resource.attributes["service.name"] == "embedder-eu"


# --- HTTP ------------------------------------------------------------------------------------------


def test_http_request_continues_the_callers_trace(exporter: InMemorySpanExporter) -> None:
    with TestClient(fake_app(exporter)) as client:
        r = client.post("/v3/embeddings", json={"model": "minilm", "input": ["a b", "c"]},
                        headers={"traceparent": TRACEPARENT, "x-request-id": "req-42"})
    assert r.status_code == 200
    spans = exporter.get_finished_spans()
    (server,) = by_name(spans)["POST /v3/embeddings"]
    assert _hex(server.context.trace_id, 32) == TRACE_ID  # the caller's trace
    assert server.parent is not None and _hex(server.parent.span_id, 16) == PARENT_ID
    assert server.kind.name == "SERVER"
    assert dict(server.attributes or {}) == {
        "http.request.method": "POST", "url.path": "/v3/embeddings", "url.scheme": "http",
        "network.protocol.version": "1.1", "client.address": "testclient", "ovembed.request_id": "req-42",
        "http.response.status_code": 200, "http.route": "/v3/embeddings", "ovembed.model": "minilm"}
    assert server.status.status_code.name == "UNSET"
    assert children(spans, server) == ["render"]  # the fake engine has no tokenizer or batcher
    assert {s.context.trace_id for s in spans} == {server.context.trace_id}
    assert server.resource.attributes["service.name"] == "ovembed"


def test_a_new_trace_without_traceparent_and_errors_are_recorded(exporter: InMemorySpanExporter) -> None:
    with TestClient(fake_app(exporter)) as client:
        assert client.post("/v3/embeddings", json={"model": "nope", "input": "a"}).status_code == 404
        assert client.get("/v1/models").status_code == 200
    spans = by_name(exporter.get_finished_spans())
    (missing,) = spans["POST /v3/embeddings"]
    assert missing.parent is None
    assert missing.attributes is not None and missing.attributes["http.response.status_code"] == 404
    assert missing.status.status_code.name == "UNSET"  # a client error is not the server's failure
    assert "render" not in spans  # nothing reached the engine
    (models,) = spans["GET /v1/models"]
    assert models.context.trace_id != missing.context.trace_id


def test_an_unsampled_caller_is_not_traced(exporter: InMemorySpanExporter) -> None:
    """The default sampler (parentbased_always_on, OTEL_TRACES_SAMPLER) follows the caller's flag."""
    with TestClient(fake_app(exporter)) as client:
        r = client.post("/v3/embeddings", json={"model": "minilm", "input": "a"},
                        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    assert r.status_code == 200
    assert exporter.get_finished_spans() == ()


# --- the batcher: queue and inference children -----------------------------------------------------


def test_each_request_gets_its_own_queue_and_inference_spans_sharing_the_batch_id(
        exporter: InMemorySpanExporter) -> None:
    tracer = tracing.for_exporter(exporter)

    async def main() -> None:
        engine = FakeEngine(slots=1, auto=False)
        batcher = Batcher(engine, BatchPolicy(max_wait=0.0), max_queue=100, name="minilm")

        async def request(rid: str, docs: list[list[int]]) -> None:
            trace = tracer.start("POST /v3/embeddings", {}, rid, {})
            assert trace is not None
            await batcher.submit(docs)
            trace.finish({})

        first = asyncio.create_task(request("one", [[1, 2, 3]]))  # a lone batch, held by the engine
        await asyncio.sleep(0)
        queued = [asyncio.create_task(request("two", [[4, 5], [6]])), asyncio.create_task(request("three", [[7]]))]
        await asyncio.sleep(0)
        engine.release()  # "one" done; "two" and "three" go in one batch
        await first
        while engine.held == []:
            await asyncio.sleep(0)
        engine.release()
        await asyncio.gather(*queued)

    asyncio.run(main())
    spans = exporter.get_finished_spans()
    servers = {s.attributes["ovembed.request_id"]: s for s in spans
               if s.attributes and "ovembed.request_id" in s.attributes}
    inference = {}
    for rid, server in servers.items():
        assert children(spans, server) == ["inference", "queue"]
        (inference[rid],) = [s for s in spans if s.name == "inference" and s.parent.span_id == server.context.span_id]
    attrs = {rid: dict(span.attributes or {}) for rid, span in inference.items()}
    assert attrs["two"]["ovembed.batch.id"] == attrs["three"]["ovembed.batch.id"] != attrs["one"]["ovembed.batch.id"]
    assert {k: v for k, v in attrs["two"].items() if k != "ovembed.batch.id"} == {
        "ovembed.model": "minilm", "ovembed.batch.size": 3, "ovembed.batch.tokens": 4,
        "ovembed.batch.padded_tokens": 3 * 8, "ovembed.batch.request_inputs": 2}
    assert attrs["three"]["ovembed.batch.request_inputs"] == 1
    assert (attrs["one"]["ovembed.batch.size"], attrs["one"]["ovembed.batch.padded_tokens"]) == (1, 8)
    # each request's spans are in its own trace
    assert len({servers[rid].context.trace_id for rid in servers}) == 3
    assert inference["two"].context.trace_id == servers["two"].context.trace_id


def test_tokenize_span_has_the_inputs_and_tokens(exporter: InMemorySpanExporter) -> None:
    trace = tracing.for_exporter(exporter).start("x", {}, "rid", {})
    assert trace is not None
    started = time.perf_counter()
    tracing.tokenized(started, started + 0.001, [np.arange(4), [1, 2]])
    trace.finish({})
    (tokenize,) = by_name(exporter.get_finished_spans())["tokenize"]
    assert dict(tokenize.attributes or {}) == {"ovembed.inputs": 2, "ovembed.tokens": 6}
    assert tokenize.end_time is not None and tokenize.start_time is not None
    assert tokenize.end_time - tokenize.start_time == pytest.approx(1_000_000, abs=2_000)
    assert tracing.CURRENT.get() is None  # finish() took it off the context


# --- gRPC ------------------------------------------------------------------------------------------


def test_grpc_call_continues_the_callers_trace(exporter: InMemorySpanExporter) -> None:
    async def main() -> None:
        server, port = await grpc_server.start(
            FakeRegistry(FakeServable("minilm")), host="127.0.0.1", port=0, api_key=None, max_inputs=16,
            max_message_bytes=1 << 20, tracer=tracing.for_exporter(exporter))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = make_stub(channel)
                await stub.ModelInfer(infer_request(["a b", "c"]), metadata=(("traceparent", TRACEPARENT),
                                                                            ("x-request-id", "grpc-7")))
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.ModelInfer(infer_request(["a"], model="nope"))
        finally:
            await grpc_server.stop(server, grace=1)

    asyncio.run(asyncio.wait_for(main(), 30))
    spans = exporter.get_finished_spans()
    ok, missing = by_name(spans)["inference.GRPCInferenceService/ModelInfer"]
    assert _hex(ok.context.trace_id, 32) == TRACE_ID
    assert ok.parent is not None and _hex(ok.parent.span_id, 16) == PARENT_ID
    assert dict(ok.attributes or {}) == {"rpc.system": "grpc", "rpc.service": "inference.GRPCInferenceService",
                                         "rpc.method": "ModelInfer", "ovembed.request_id": "grpc-7",
                                         "rpc.grpc.status_code": 0, "ovembed.model": "minilm"}
    assert children(spans, ok) == ["render"]
    assert missing.attributes is not None and missing.attributes["rpc.grpc.status_code"] == 5  # NOT_FOUND
    assert missing.status.status_code.name == "UNSET" and missing.parent is None


# --- a real OTLP export, and nothing when off --------------------------------------------------------


class _Collector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        _Collector.received.append((self.path, body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.received = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_otlp_endpoint_flag_exports_over_http_protobuf(collector: str) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    app = fake_app(None, {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, otlp_endpoint=collector)
    with TestClient(app) as client:
        assert client.post("/v3/embeddings", json={"model": "minilm", "input": "a"},
                           headers={"traceparent": TRACEPARENT}).status_code == 200
    # the lifespan's end flushed the batch processor
    assert [path for path, _ in _Collector.received] == ["/v1/traces"]
    request = ExportTraceServiceRequest.FromString(_Collector.received[0][1])
    (resource,) = request.resource_spans
    service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
    names = sorted(s.name for scope in resource.scope_spans for s in scope.spans)
    trace_ids = {s.trace_id.hex() for scope in resource.scope_spans for s in scope.spans}
    assert (service, names, trace_ids) == ("ovembed", ["POST /v3/embeddings", "render"], {TRACE_ID})


_OFF_SCRIPT = f"""
TRACEPARENT = {TRACEPARENT!r}
import json, os, sys
for key in [k for k in os.environ if k.startswith("OTEL_")]:
    del os.environ[key]
from starlette.testclient import TestClient
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

app = make_app(FakeRegistry(FakeServable("fake")))
with TestClient(app) as client:
    status = client.post("/v3/embeddings", json={{"model": "fake", "input": "x"}},
                         headers={{"traceparent": TRACEPARENT}}).status_code
otel = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
print(json.dumps({{"status": status, "tracer": app.state.tracer, "otel": otel}}))
"""


def test_off_by_default_imports_nothing_from_opentelemetry() -> None:
    out = subprocess.run([sys.executable, "-c", _OFF_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"status": 200, "tracer": None, "otel": []}


# --- the real engine: every phase under the server span ----------------------------------------------


@pytest.mark.slow
def test_real_model_http_and_grpc_traces_have_every_phase(minilm_repo: Path, exporter: InMemorySpanExporter) -> None:
    from tests.support.live_server import free_port

    cfg = ServeConfig(config_path=minilm_repo, file_system_poll_wait_seconds=0, port=free_port())
    app = create_app(cfg, environ={}, tracer=tracing.for_exporter(exporter))
    with TestClient(app, base_url="http://localhost") as client:
        deadline = time.monotonic() + 120
        while client.get("/v2/models/minilm/ready").status_code != 200:
            assert time.monotonic() < deadline, "the registry did not get ready"
            time.sleep(0.05)
        exporter.clear()
        r = client.post("/v3/embeddings", json={"model": "minilm", "input": ["hello world", "a second text"]},
                        headers={"traceparent": TRACEPARENT})
        assert r.status_code == 200 and len(r.json()["data"]) == 2
        with grpc.insecure_channel(f"127.0.0.1:{app.state.grpc_port}") as channel:
            response = make_stub(channel).ModelInfer(infer_request(["hello world"]),
                                                     metadata=(("x-request-id", "grpc-real"),))
        assert list(response.outputs[0].shape) == [1, 384]
    spans = exporter.get_finished_spans()
    (rest,) = by_name(spans)["POST /v3/embeddings"]
    (rpc,) = by_name(spans)["inference.GRPCInferenceService/ModelInfer"]
    assert _hex(rest.context.trace_id, 32) == TRACE_ID and rpc.context.trace_id != rest.context.trace_id
    for server, inputs in ((rest, 2), (rpc, 1)):
        assert children(spans, server) == ["inference", "queue", "render", "tokenize"]
        phase = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == server.context.span_id}
        assert dict(phase["tokenize"].attributes or {})["ovembed.inputs"] == inputs
        batch = dict(phase["inference"].attributes or {})
        assert batch["ovembed.model"] == "minilm" and batch["ovembed.batch.request_inputs"] == inputs
        assert batch["ovembed.batch.size"] == inputs and batch["ovembed.batch.padded_tokens"] % 8 == 0
        # the phases follow one another inside the server span
        order = [phase[n] for n in ("tokenize", "queue", "inference", "render")]
        assert all(a.end_time <= b.start_time + 1_000_000 for a, b in itertools.pairwise(order))  # 1 ms clock slack
        assert server.start_time <= order[0].start_time and order[-1].end_time <= server.end_time
    assert dict(rpc.attributes or {})["ovembed.request_id"] == "grpc-real"
