"""What a handler takes from the request: app state, the model, the JSON body, elapsed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

from starlette.requests import Request
from starlette.types import Receive

from ovembed.config import ServeConfig
from ovembed.errors import ModelNotReady
from ovembed.serving.engine.interface import Registry, Servable
from ovembed.serving.wire import fields

T = TypeVar("T")


def registry(request: Request) -> Registry:
    return cast(Registry, request.app.state.registry)


def note_model(request: Request, name: str) -> None:
    """Record the configured model this request is about (the ``model`` label of its metrics)."""
    request.state.model = name


def servable(request: Request, name: str) -> Servable:
    """The model ``name`` (``ModelNotFound`` -> 404, ``ModelNotReady`` -> 503), noted for the
    metrics when it is configured: unknown names never become label values."""
    try:
        found = registry(request).get(name)
    except ModelNotReady:
        note_model(request, name)
        raise
    note_model(request, name)
    return found


def config(request: Request) -> ServeConfig:
    return cast(ServeConfig, request.app.state.config)


async def json_body(request: Request) -> fields.JsonObject:
    return fields.load_object(await request.body())


def elapsed_ns(request: Request) -> int:
    """Nanoseconds since the request arrived (set by RequestContextMiddleware)."""
    start = request.scope.get("state", {}).get("start_ns")
    return time.perf_counter_ns() - start if start is not None else 0


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """Await ``work``, or cancel it and return None if the client goes away first.

    Call after the body has been read: the next ASGI message can then only be the disconnect.
    Cancelling the engine's ``embed`` drops its queued work, so no compute is wasted.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this handler itself is cancelled (server shutdown)
        for pending in (task, watcher):
            pending.cancel()
    if not task.cancelled() and task.done():
        return task.result()
    await asyncio.gather(task, return_exceptions=True)  # let the cancellation land
    return None


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
