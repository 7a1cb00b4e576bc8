"""What a handler takes from the request: app state, the request context, the JSON body."""

from __future__ import annotations

from typing import cast

from starlette.requests import Request
from starlette.types import Receive

from ovembed.config import ServeConfig
from ovembed.serving.context import RequestContext, request_id
from ovembed.serving.engine.interface import Registry
from ovembed.serving.wire import fields


def registry(request: Request) -> Registry:
    return cast(Registry, request.app.state.registry)


def config(request: Request) -> ServeConfig:
    return cast(ServeConfig, request.app.state.config)


def context(request: Request) -> RequestContext:
    """The request's context (made by RequestContextMiddleware), watching for the client's disconnect.

    Call after the body has been read: the next ASGI message can then only be the disconnect.
    """
    state = request.scope.setdefault("state", {})
    ctx = state.get("context")
    if not isinstance(ctx, RequestContext):  # an app mounted without the middleware (tests)
        ctx = state["context"] = RequestContext(request_id(None))
    ctx.client_gone = lambda: _disconnected(request.receive)
    return ctx


async def json_body(request: Request) -> fields.JsonObject:
    return fields.load_object(await request.body())


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
