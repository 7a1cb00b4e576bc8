"""What a handler takes from the request: app state, the request context, the JSON body."""

from __future__ import annotations

import asyncio
from typing import cast

from starlette.requests import Request
from starlette.types import Receive

from ovembed.config import ServeConfig
from ovembed.serving.api import Registry
from ovembed.serving.context import RequestContext, request_id
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
    receive = request.receive  # not the request: scope -> context -> closure -> request (and its body) is a cycle
    ctx.client_gone = lambda: _disconnected(receive)
    return ctx


# Bodies larger than this are parsed in a worker thread (8 MB of JSON is ~40 ms of orjson).
_OFF_LOOP_BODY_BYTES = 256 * 1024


async def json_body(request: Request) -> fields.JsonObject:
    return await parse_json(await request.body())


async def parse_json(body: bytes) -> fields.JsonObject:
    """The body as a JSON object (400 otherwise), parsed off the event loop when it is large."""
    if len(body) > _OFF_LOOP_BODY_BYTES:
        return await asyncio.to_thread(fields.load_object, body)
    return fields.load_object(body)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
