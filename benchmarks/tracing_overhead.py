"""What OpenTelemetry tracing costs: off (the hooks' None checks) and on (every request traced and exported).

1. ``hooks``: the engine's tracing hooks with tracing off, timed in a loop (what every request pays), and
   with tracing on, one request's five spans made and queued for export (what a traced request adds).
2. A paired A/B (:mod:`benchmarks.paired_ab`) of two servers of this tree on the same MiniLM repository:
   A without tracing, B with ``--otlp_endpoint`` pointing at an OTLP/gRPC sink in this process (it counts
   and drops spans, like a collector that keeps up). Both servers run side by side, so load on the machine
   hits both alike; the sink's thread is this process's.

    .venv/bin/python -m benchmarks.tracing_overhead --scenarios short,docs --rounds 4
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import timeit
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import paired_ab
from benchmarks.harness import export, free_port
from ovembed.serving import tracing
from ovembed.serving.context import RequestContext


class _Sink:
    """An OTLP/gRPC trace collector that counts spans and keeps nothing."""

    def __init__(self) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        self.spans = 0
        self._lock = threading.Lock()
        sink = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: object, context: object) -> object:
                count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)  # type: ignore[attr-defined]
                with sink._lock:
                    sink.spans += count
                return trace_service_pb2.ExportTraceServiceResponse()

        self.port = free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(1)


def hooks_off(n: int = 200_000) -> dict[str, float]:
    """Nanoseconds per call of each hook a request meets when tracing is off."""
    assert tracing.CURRENT.get() is None
    ctx = RequestContext("bench")
    docs = [[1, 2, 3]]
    started = time.perf_counter()
    out = {
        "tokenized": timeit.timeit(lambda: tracing.tokenized(started, started, docs), number=n) / n * 1e9,
        "job_trace": timeit.timeit(tracing.job_trace, number=n) / n * 1e9,
        "ctx.trace check": timeit.timeit(lambda: ctx.trace is not None, number=n) / n * 1e9,
        "empty lambda (loop cost)": timeit.timeit(lambda: None, number=n) / n * 1e9,
    }
    return out


def spans_on(n: int = 2_000) -> float:
    """Microseconds of one traced request's spans (server + tokenize, queue, inference, render), made and
    handed to a batch processor whose exporter drops them: the tracing work a request adds in the server."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = tracing._provider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    tracer = tracing.Tracer(provider)
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

    def request() -> None:
        trace = tracer.start("POST /v3/embeddings", carrier, "rid", {"http.request.method": "POST"})
        assert trace is not None
        now = time.perf_counter()
        tracing.tokenized(now, now, [[1, 2, 3]])
        job = tracing.job_trace()
        assert job is not None
        batch = tracing.BatchTrace({job: 1}, {"ovembed.model": "minilm", "ovembed.batch.id": 1})
        trace.child("queue", job.submitted_ns, batch.started_ns, {"ovembed.model": "minilm"})
        batch.finished(False)
        trace.engine_done()
        trace.rendered()
        trace.finish({"http.response.status_code": 200})

    seconds = timeit.timeit(request, number=n) / n
    provider.shutdown()
    return seconds * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="repository config.json with 'minilm' (default: export fp32)")
    parser.add_argument("--scenarios", default="short,docs")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--n", type=int, default=250)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for name, ns in hooks_off().items():
        print(f"hooks off: {name} {ns:.0f} ns/call", flush=True)
    print(f"spans on: one traced request's 5 spans {spans_on():.0f} us (made and queued for export)", flush=True)
    config = args.config or export(Path("/tmp/ovembed-tracing-bench"))
    sink = _Sink()
    try:
        paired_ab.main(["--config", str(config), "--scenarios", args.scenarios, "--rounds", str(args.rounds),
                        "--n", str(args.n), "--b_flags", f"--otlp_endpoint http://127.0.0.1:{sink.port}",
                        *(["--quick"] if args.quick else [])])
        time.sleep(1)  # B flushed its spans when it stopped; let the sink finish counting
    finally:
        sink.stop()
    print(f"spans received from B: {sink.spans:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
