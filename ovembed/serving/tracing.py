"""OpenTelemetry traces: one server span per request, with children for its phases.

Off unless ``--otlp_endpoint`` or the standard ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`` /
``OTEL_TRACES_EXPORTER`` variables are set (``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``
turn it off again). Off, nothing is imported from ``opentelemetry`` (the ``ovembed[otel]`` extra) and each
hook costs a ``None`` check: the transports hold ``tracer is None``, the request's :class:`RequestTrace`
lives in :data:`CURRENT` (None when off or not sampled), and the batcher asks only when a traced job ever
reached it.

A request's trace (the transports start it: :class:`Tracer.start`)::

    POST /v3/embeddings  (SERVER; parent from an incoming W3C traceparent; ovembed.request_id, ovembed.model)
      tokenize           (tasks: inputs, tokens)
      queue              (batcher: submit -> the request's first batch starts)
      inference          (batcher: one per batch holding the request's inputs: batch id/size/padded tokens)
      render             (engine done -> response starts: use case shaping, wire format, serialisation)

One inference batch serves many requests. Each request gets its own ``inference`` child for every batch
that holds its inputs, carrying the batch's id (``ovembed.batch.id``, shared by the spans of every request
in that batch), size and padded tokens. The alternative, one batch span linked to the requests' spans,
would put the batch in a trace of its own with no parent, sampled apart from the requests it serves, and
trace viewers show links as a footnote: a slow request could not be followed into its inference without
a second query. With per-request spans every sampled trace is complete, and a batch id search shows the
batch's neighbours.

Spans are made with explicit start and end times from the timestamps the code takes anyway, after the
fact, so nothing is held open across ``await`` and OpenTelemetry's own context is never attached.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ovembed.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger("ovembed.serving")

# The request being handled's trace; None when tracing is off or the request is not sampled.
CURRENT: ContextVar[RequestTrace | None] = ContextVar("ovembed_trace", default=None)

PROTOCOLS = ("grpc", "http/protobuf")
EXPORTERS = ("otlp", "console")
INSTALL_HINT = "pip install 'ovembed[otel]'"
DEFAULT_SERVICE_NAME = "ovembed"

# perf_counter (tasks) and monotonic (the batcher's loop) seconds -> Unix nanoseconds for span times
_PERF_TO_WALL_NS = time.time_ns() - time.perf_counter_ns()
_batch_ids = itertools.count(1)  # traced batches, process-wide: ovembed.batch.id


def _perf_ns(seconds: float) -> int:
    return _PERF_TO_WALL_NS + int(seconds * 1e9)


@dataclass(frozen=True)
class Settings:
    """What the flag and the environment ask for (:func:`settings`)."""

    exporters: tuple[str, ...]  # "otlp", "console"
    endpoint: str | None  # --otlp_endpoint; None: the exporter reads OTEL_EXPORTER_OTLP_* itself
    protocol: str  # "grpc" or "http/protobuf"


def settings(otlp_endpoint: str | None, environ: Mapping[str, str]) -> Settings | None:
    """The tracing ``--otlp_endpoint`` and the standard ``OTEL_*`` variables ask for; None: off.

    Raises ``ConfigError`` for an exporter or protocol ovembed does not offer.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = tuple(n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip())
    if names == ("none",):
        return None
    endpoint = otlp_endpoint or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or \
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not names and not endpoint:
        return None
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise ConfigError(f"OTEL_TRACES_EXPORTER: ovembed exports traces with {', '.join(EXPORTERS)} (or none), "
                          f"not {', '.join(unknown)}")
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "grpc").strip()
    if protocol not in PROTOCOLS:
        raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return Settings(names or ("otlp",), otlp_endpoint or None, protocol)


def from_config(otlp_endpoint: str | None, environ: Mapping[str, str]) -> Tracer | None:
    """The server's tracer, or None when tracing is off (then nothing is imported from opentelemetry).

    Raises ``ConfigError`` with the install hint when tracing is asked for without the ``otel`` extra.
    """
    wanted = settings(otlp_endpoint, environ)
    if wanted is None:
        return None
    try:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        exporters = [_otlp_exporter(wanted) if name == "otlp" else ConsoleSpanExporter()
                     for name in wanted.exporters]
    except ImportError:  # the SDK or the OTLP exporter is missing
        raise ConfigError(f"tracing is on (--otlp_endpoint or OTEL_* variables) but OpenTelemetry is not "
                          f"installed: {INSTALL_HINT}") from None
    provider = _provider()
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    logger.info("tracing: %s, service.name %s", ", ".join(
        f"OTLP {wanted.protocol} to {wanted.endpoint or 'OTEL_EXPORTER_OTLP_*'}" if n == "otlp" else n
        for n in wanted.exporters), provider.resource.attributes.get("service.name"))
    return Tracer(provider)


def _otlp_exporter(wanted: Settings) -> SpanExporter:
    endpoint = wanted.endpoint
    if wanted.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    # Like OTEL_EXPORTER_OTLP_ENDPOINT, the flag names the collector; the traces path is appended.
    if endpoint is not None and not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return HttpExporter(endpoint=endpoint)


def _provider() -> TracerProvider:
    """A provider whose sampler comes from OTEL_TRACES_SAMPLER(_ARG) (the SDK reads them) and whose
    ``service.name`` is OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES', else "ovembed"."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    return TracerProvider(resource=resource)


def for_exporter(exporter: SpanExporter) -> Tracer:
    """A tracer exporting every span at once to ``exporter`` (tests: the SDK's InMemorySpanExporter)."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = _provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracer(provider)


class Tracer:
    """Tracing on: starts each request's :class:`RequestTrace` (the transports hold it, None when off)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import propagate, trace

        import ovembed

        self.provider = provider
        self._tracer = provider.get_tracer("ovembed", ovembed.__version__)
        self._extract = propagate.extract  # W3C traceparent/tracestate (OTEL_PROPAGATORS)
        self._in_context = trace.set_span_in_context
        self._server = trace.SpanKind.SERVER

    def start(self, name: str, carrier: Mapping[str, str], request_id: str,
              attributes: Mapping[str, Any]) -> RequestTrace | None:
        """The server span of a request that just arrived, child of the caller's ``traceparent`` in
        ``carrier`` (HTTP headers, gRPC metadata), made current in :data:`CURRENT` until
        :meth:`RequestTrace.finish`. None when the sampler drops it (then nothing else is recorded)."""
        span = self._tracer.start_span(name, context=self._extract(carrier), kind=self._server,
                                       attributes={**attributes, "ovembed.request_id": request_id})
        if not span.is_recording():
            span.end()
            return None
        trace = RequestTrace(self, span)
        trace.token = CURRENT.set(trace)
        return trace

    def child(self, parent: Any, name: str, start_ns: int, end_ns: int, attributes: Mapping[str, Any],
              *, failed: bool = False) -> None:
        """A finished span under ``parent`` (:meth:`in_context` of the parent span)."""
        span = self._tracer.start_span(name, context=parent, start_time=start_ns, attributes=attributes)
        if failed:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end_ns)

    def in_context(self, span: Any) -> Any:
        return self._in_context(span)

    def shutdown(self) -> None:
        """Export what is buffered and stop (blocks up to the exporters' timeouts)."""
        self.provider.shutdown()


class RequestTrace:
    """One request's server span; the phases add their children to it."""

    __slots__ = ("_context", "_engine_done_ns", "span", "token", "tracer")

    def __init__(self, tracer: Tracer, span: Any) -> None:
        self.tracer = tracer
        self.span = span
        self._context = tracer.in_context(span)  # the parent of its children, made once
        self.token: Token[RequestTrace | None] | None = None
        self._engine_done_ns: int | None = None

    def child(self, name: str, start_ns: int, end_ns: int, attributes: Mapping[str, Any],
              *, failed: bool = False) -> None:
        self.tracer.child(self._context, name, start_ns, end_ns, attributes, failed=failed)

    def engine_done(self) -> None:
        """The engine's work for the request is done (:meth:`RequestContext.guard`): rendering starts."""
        self._engine_done_ns = time.time_ns()

    def rendered(self) -> None:
        """The response starts (HTTP) or the handler returned (gRPC): the ``render`` child, if the
        request reached the engine."""
        if self._engine_done_ns is not None:
            self.child("render", self._engine_done_ns, time.time_ns(), {})
            self._engine_done_ns = None

    def finish(self, attributes: Mapping[str, Any], *, error: str | None = None,
               name: str | None = None) -> None:
        """End the server span (``error``: a server-side failure's type, marks the span as failed)."""
        span = self.span
        if name is not None:
            span.update_name(name)
        span.set_attributes(attributes)
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        if self.token is not None:
            CURRENT.reset(self.token)
            self.token = None


# --- the hooks the engine calls: each a ContextVar read and a None check when off ---------------


def tokenized(started: float, done: float, docs: Sequence[Sequence[int]]) -> None:
    """The ``tokenize`` child: ``started``/``done`` are ``time.perf_counter()`` seconds."""
    trace = CURRENT.get()
    if trace is not None:
        trace.child("tokenize", _perf_ns(started), _perf_ns(done),
                    {"ovembed.inputs": len(docs), "ovembed.tokens": sum(len(d) for d in docs)})


class JobTrace:
    """A batcher job (one ``submit``) of a traced request."""

    __slots__ = ("queued", "request", "submitted_ns")

    def __init__(self, request: RequestTrace) -> None:
        self.request = request
        self.submitted_ns = time.time_ns()
        self.queued = True  # until its first batch starts


def job_trace() -> JobTrace | None:
    """For ``Batcher.submit``: the job's trace when the request is traced."""
    trace = CURRENT.get()
    return None if trace is None else JobTrace(trace)


class BatchTrace:
    """One dispatched batch holding inputs of traced requests: each gets its own ``inference`` child."""

    __slots__ = ("attributes", "jobs", "started_ns")

    def __init__(self, jobs: dict[JobTrace, int], attributes: dict[str, Any]) -> None:
        self.jobs = jobs  # job trace -> its inputs in this batch
        self.attributes = attributes
        self.started_ns = time.time_ns()

    def finished(self, failed: bool) -> None:
        end = time.time_ns()
        for job, inputs in self.jobs.items():
            job.request.child("inference", self.started_ns, end,
                              {**self.attributes, "ovembed.batch.request_inputs": inputs}, failed=failed)


class _Job(Protocol):
    trace: JobTrace | None


class _Item(Protocol):  # batching.policy.Item, without importing the batcher's modules
    @property
    def job(self) -> _Job | None: ...
    @property
    def length(self) -> int: ...


def batch_started(batch: Sequence[_Item], model: str, width: int) -> BatchTrace | None:
    """For ``Batcher._dispatch`` (when a traced job ever reached it): the jobs' ``queue`` children end
    as their first batch starts; the batch's trace, or None when it holds no traced request."""
    jobs: dict[JobTrace, int] = {}
    for it in batch:
        job = it.job.trace if it.job is not None else None
        if job is not None:
            jobs[job] = jobs.get(job, 0) + 1
    if not jobs:
        return None
    batch_trace = BatchTrace(jobs, {"ovembed.model": model, "ovembed.batch.id": next(_batch_ids),
                                    "ovembed.batch.size": len(batch), "ovembed.batch.padded_tokens": width * len(batch),
                                    "ovembed.batch.tokens": sum(it.length for it in batch)})
    for job in jobs:
        if job.queued:
            job.queued = False
            job.request.child("queue", job.submitted_ns, batch_trace.started_ns, {"ovembed.model": model})
    return batch_trace


# --- the transports' server spans (semantic conventions for HTTP and RPC servers) --------------


def start_http(tracer: Tracer, scope: Mapping[str, Any], headers: Mapping[str, str],
               request_id: str) -> RequestTrace | None:
    """An HTTP request's server span (named ``METHOD /route`` once routed: :func:`finish_http`)."""
    client = scope.get("client")
    attributes: dict[str, Any] = {"http.request.method": scope["method"], "url.path": scope["path"],
                                  "url.scheme": scope.get("scheme", "http"),
                                  "network.protocol.version": scope.get("http_version", "1.1")}
    if client:
        attributes["client.address"] = client[0]
    return tracer.start(scope["method"], headers, request_id, attributes)


def finish_http(trace: RequestTrace, scope: Mapping[str, Any], status: int, model: str | None) -> None:
    route = getattr(scope.get("route"), "path", None)
    attributes: dict[str, Any] = {"http.response.status_code": status}
    if route:
        attributes["http.route"] = route
    if model:
        attributes["ovembed.model"] = model
    trace.finish(attributes, error=str(status) if status >= 500 else None,
                 name=f"{scope['method']} {route}" if route else None)


def start_grpc(tracer: Tracer, service: str, method: str, metadata: Mapping[str, str],
               request_id: str) -> RequestTrace | None:
    """A gRPC call's server span, ``service/method``."""
    return tracer.start(f"{service}/{method}", metadata, request_id,
                        {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method})


# gRPC codes that are the server's fault (OpenTelemetry's RPC conventions)
_GRPC_SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
                                 "DATA_LOSS"})


def finish_grpc(trace: RequestTrace, code: str, code_value: int, model: str | None) -> None:
    attributes: dict[str, Any] = {"rpc.grpc.status_code": code_value}
    if model:
        attributes["ovembed.model"] = model
    trace.finish(attributes, error=code if code in _GRPC_SERVER_ERRORS else None)
