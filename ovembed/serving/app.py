"""The composition root: ``create_app(cfg)`` wires config, registry, middleware and routes.

Nothing heavy happens at import time or in ``create_app``; the lifespan builds the model
registry (unless one is given), starts it (models load in the background, readiness turns
green when they are done) and stops it on shutdown; with ``--port`` it also serves KServe gRPC
on the same event loop and registry. Handlers find everything in ``app.state``:
``app.state.config`` (ServeConfig), ``app.state.registry`` (Registry),
``app.state.auth_enabled`` and ``app.state.grpc_port`` (None when gRPC is off).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from ovembed.config import ServeConfig
from ovembed.serving.middleware import (
    AuthMiddleware,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    load_api_key,
)
from ovembed.serving.responses import error_response
from ovembed.serving.routes import kserve, ollama, openai, tokenize
from ovembed.serving.servable import Registry


class ManagedRegistry(Registry, Protocol):
    """A registry whose lifetime the app owns (the engine's ModelRegistry, or a test fake)."""

    async def start(self) -> None:
        """Begin loading models in the background and return at once."""
        ...

    async def stop(self) -> None: ...


def build_registry(cfg: ServeConfig) -> ManagedRegistry:
    """The OpenVINO engine's registry for ``cfg`` (imported here: it pulls in openvino)."""
    from ovembed.serving.registry import ModelRegistry

    return ModelRegistry.from_serve_config(cfg)


def all_routes() -> list[BaseRoute]:
    return [*openai.routes(), *tokenize.routes(), *kserve.routes(), *ollama.routes()]


def _middleware(cfg: ServeConfig, api_key: str | None) -> list[Middleware]:
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
    stack.append(Middleware(RequestContextMiddleware))
    if api_key is not None:
        stack.append(Middleware(AuthMiddleware, api_key=api_key))
    stack.append(Middleware(BodySizeLimitMiddleware, max_body_bytes=cfg.max_body_bytes))
    return stack


@asynccontextmanager
async def _grpc(cfg: ServeConfig, registry: Registry, api_key: str | None) -> AsyncIterator[int | None]:
    """KServe gRPC alongside REST while the app runs, when ``--port`` is set (else None).

    grpcio and the generated stubs are imported only then.
    """
    if not cfg.port:
        yield None
        return
    from ovembed.serving.grpc.server import grpc_server

    async with grpc_server(cfg, registry, api_key=api_key) as port:
        yield port


def create_app(cfg: ServeConfig, registry: ManagedRegistry | None = None, *,
               environ: Mapping[str, str] | None = None) -> Starlette:
    """The ASGI app for ``cfg``.

    ``registry`` replaces the OpenVINO engine (tests pass a fake). ``environ`` is where env
    ``API_KEY`` is looked up (default ``os.environ``). Raises ``ConfigError`` if
    ``--api_key_file`` is unreadable or empty.
    """
    api_key = load_api_key(cfg, os.environ if environ is None else environ)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        reg = registry if registry is not None else build_registry(cfg)
        app.state.registry = reg
        await reg.start()
        try:
            async with _grpc(cfg, reg, api_key) as grpc_port:
                app.state.grpc_port = grpc_port
                yield
        finally:
            await reg.stop()

    app = Starlette(
        routes=all_routes(),
        middleware=_middleware(cfg, api_key),
        # Starlette's own 404/405 (HTTPException) get our envelope too; every other error
        # propagates to RequestContextMiddleware, which renders it with the same function.
        exception_handlers={HTTPException: error_response},
        lifespan=lifespan,
    )
    app.state.config = cfg
    app.state.auth_enabled = api_key is not None
    app.state.grpc_port = None  # the bound port while the lifespan runs with --port
    return app
