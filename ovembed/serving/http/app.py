"""The composition root: ``create_app(cfg)`` wires config, registry, metrics, middleware and
routes.

Nothing heavy happens at import time or in ``create_app``; the lifespan builds the model
registry (unless one is given), starts it (models load in the background, readiness turns
green when they are done), follows config.json and the model folders for live reload
(:mod:`ovembed.serving.models.reload`) and stops it all on shutdown; with ``--port`` it also serves
KServe gRPC on the same event loop and registry. Handlers find everything in ``app.state``:
``app.state.config`` (ServeConfig), ``app.state.registry`` (Registry),
``app.state.metrics`` (Metrics, None with ``--no-metrics``), ``app.state.tracer`` (serving.tracing.Tracer,
None when tracing is off), ``app.state.reloader`` (Reloader,
None when the registry cannot reload), ``app.state.auth_enabled`` and ``app.state.grpc_port``
(None when gRPC is off).

Shutdown: the server calls :func:`begin_shutdown` as soon as it stops accepting connections,
so gRPC drains at the same time as HTTP and within the same ``--graceful_timeout``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from ovembed.config import ServeConfig
from ovembed.exitcodes import ExitCode
from ovembed.serving import tracing
from ovembed.serving.api import Registry
from ovembed.serving.http.middleware import (
    AuthMiddleware,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    load_api_key,
)
from ovembed.serving.http.responses import http_exception_response
from ovembed.serving.http.routes import (
    classify,
    cohere_embed,
    config,
    kserve,
    ollama,
    openai,
    rerank,
    score,
    sparse,
    token_embed,
    tokenize,
)
from ovembed.serving.http.routes import metrics as metrics_routes
from ovembed.serving.http.web_safety import WebSafetyMiddleware
from ovembed.serving.metrics import Metrics
from ovembed.serving.models.reload import Reloader, ReloadResult, reloading
from ovembed.serving.models.startup import report_start


def build_registry(cfg: ServeConfig) -> Registry:
    """The OpenVINO engine's registry for ``cfg`` (imported here: it pulls in openvino)."""
    from ovembed.serving.models.registry import ModelRegistry

    return ModelRegistry.from_serve_config(cfg)


def all_routes() -> list[BaseRoute]:
    """Every API route (``/metrics`` is added by ``create_app`` when metrics are on)."""
    return [*openai.routes(), *tokenize.routes(), *kserve.routes(), *config.routes(), *ollama.routes(),
            *rerank.routes(), *score.routes(), *cohere_embed.routes(), *sparse.routes(),
            *token_embed.routes(), *classify.routes()]


def begin_shutdown(app: Starlette) -> None:
    """The server stopped accepting connections: start draining gRPC too."""
    event: asyncio.Event | None = getattr(app.state, "shutting_down", None)
    if event is not None:
        event.set()


def _middleware(cfg: ServeConfig, api_key: str | None, metrics: Metrics | None,
                tracer: tracing.Tracer | None) -> list[Middleware]:
    stack: list[Middleware] = []
    origins = [o.strip() for o in cfg.allowed_origins.split(",") if o.strip()]
    if origins:  # outermost, so preflights are answered without a key and errors get CORS headers
        stack.append(Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=[m.strip() for m in cfg.allowed_methods.split(",") if m.strip()],
            allow_headers=[h.strip() for h in cfg.allowed_headers.split(",") if h.strip()],
            expose_headers=["x-request-id", "x-total-time", "x-inference-time",
                            "x-queue-time", "x-tokenization-time"],
        ))
    stack.append(Middleware(RequestContextMiddleware, metrics=metrics, tracer=tracer,
                            request_timeout=cfg.request_timeout))
    stack.append(Middleware(WebSafetyMiddleware, cfg=cfg))  # Host, Origin, Content-Type/-Encoding
    if api_key is not None:
        stack.append(Middleware(AuthMiddleware, api_key=api_key))
    stack.append(Middleware(BodySizeLimitMiddleware, max_body_bytes=cfg.max_body_bytes))
    return stack


@asynccontextmanager
async def _grpc(cfg: ServeConfig, registry: Registry, api_key: str | None, metrics: Metrics | None,
                stopping: asyncio.Event, tracer: tracing.Tracer | None) -> AsyncIterator[int | None]:
    """KServe gRPC alongside REST while the app runs, when ``--port`` is set (else None).

    grpcio and the generated stubs are imported only then.
    """
    if not cfg.port:
        yield None
        return
    from ovembed.serving.grpc.server import grpc_server

    async with grpc_server(cfg, registry, api_key=api_key, metrics=metrics, stopping=stopping,
                           tracer=tracer) as port:
        yield port


@asynccontextmanager
async def _pull(cfg: ServeConfig, registry: Registry, reloader: Reloader | None) -> AsyncIterator[None]:
    """``--source_model``: export the model in the background if the repository lacks it (serving.models.pull)."""
    if cfg.source_model is None:
        yield
        return
    from ovembed.serving.models.pull import pulling
    from ovembed.serving.models.registry import ModelRegistry

    if not isinstance(registry, ModelRegistry):
        raise TypeError("--source_model needs the OpenVINO registry")
    async with pulling(cfg, registry, reloader):
        yield


def _stop_empty(app: Starlette) -> None:
    """Nothing could be served at start: the server exits 1 (``run`` reads ``exit_code``)."""
    app.state.exit_code = ExitCode.FAILURE
    if app.state.stop_server is not None:
        app.state.stop_server()


def create_app(cfg: ServeConfig, registry: Registry | None = None, *,
               environ: Mapping[str, str] | None = None, tracer: tracing.Tracer | None = None) -> Starlette:
    """The ASGI app for ``cfg``.

    ``registry`` replaces the OpenVINO engine (tests pass a fake). ``environ`` is where env
    ``API_KEY`` and the ``OTEL_*`` variables are looked up (default ``os.environ``). ``tracer``
    replaces the one ``--otlp_endpoint``/``OTEL_*`` ask for (tests pass one with an in-memory
    exporter). Raises ``ConfigError`` if ``--api_key_file`` is unreadable or empty, or if tracing
    is asked for without the ``otel`` extra.
    """
    env = os.environ if environ is None else environ
    api_key = load_api_key(cfg, env)
    if tracer is None:
        tracer = tracing.from_config(cfg.otlp_endpoint, env)
    routes = all_routes()
    metrics: Metrics | None = None
    if cfg.metrics_enable:
        routes += metrics_routes.routes()
        metrics = Metrics(routes)

    def on_reload(result: ReloadResult) -> None:
        if metrics is not None:
            metrics.observe_reload(result.outcome)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        reg = registry if registry is not None else build_registry(cfg)
        app.state.registry = reg
        app.state.shutting_down = stopping = asyncio.Event()
        if metrics is not None:
            metrics.watch(reg)
            reg.observe_batches(metrics.batch_observer)
        await reg.start()
        try:
            async with (_grpc(cfg, reg, api_key, metrics, stopping, tracer) as grpc_port,
                        reloading(cfg, reg, on_result=on_reload) as reloader,
                        _pull(cfg, reg, reloader)):
                app.state.grpc_port = grpc_port
                app.state.reloader = reloader
                report = asyncio.create_task(report_start(cfg, reg, grpc_port=lambda: app.state.grpc_port,
                                                          stop=lambda: _stop_empty(app)), name="start report")
                try:
                    yield
                finally:
                    report.cancel()
        finally:
            await reg.stop()
            if tracer is not None:  # export the spans still buffered
                await asyncio.to_thread(tracer.shutdown)

    app = Starlette(
        routes=routes,
        middleware=_middleware(cfg, api_key, metrics, tracer),
        # Starlette's own 404/405 (HTTPException) get our envelope too; every other error
        # propagates to RequestContextMiddleware, which renders it with the same function.
        exception_handlers={HTTPException: http_exception_response},
        lifespan=lifespan,
    )
    app.state.config = cfg
    app.state.auth_enabled = api_key is not None
    app.state.grpc_port = None  # the bound port while the lifespan runs with --port
    app.state.metrics = metrics
    app.state.tracer = tracer
    app.state.reloader = None
    app.state.exit_code = None  # set when the server must exit with a failure (nothing to serve)
    app.state.stop_server = None  # set by serving.http.server.run: asks uvicorn to shut down
    return app
