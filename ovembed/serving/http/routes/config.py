"""OVMS's configuration API: ``GET /v1/config`` (model statuses) and ``POST /v1/config/reload``.

The reload answers 201 when models were added, removed or reloaded, 200 when nothing changed
(both with the ``/v1/config`` body, after new versions have loaded or failed), and 500 with
OVMS's error body when config.json cannot be read (nothing changes then). While config.json is
broken, ``/v1/config`` also carries ``"config_error": {"message": ...}`` next to the models.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.http.responses import JSONResponse
from ovembed.serving.http.routes import deps
from ovembed.serving.models.reload import Reloader
from ovembed.serving.wire import kserve


def _reloader(request: Request) -> Reloader | None:
    return getattr(request.app.state, "reloader", None)


def _status(request: Request) -> dict[str, Any]:
    registry = deps.registry(request)
    body = kserve.config_status((name, registry.status(name)) for name in registry.names())
    reloader = _reloader(request)
    if reloader is not None and reloader.error is not None:
        body[kserve.CONFIG_ERROR_KEY] = {"message": reloader.error}
    return body


async def config_status(request: Request) -> Response:
    return JSONResponse(_status(request))


async def reload_config(request: Request) -> Response:
    reloader = _reloader(request)
    changed = False
    if reloader is not None:
        result = await reloader.reload()
        if result.error is not None:
            return JSONResponse({"error": f"Reloading config file failed: {result.error}"}, status_code=500)
        changed = result.changed
    return JSONResponse(_status(request), status_code=201 if changed else 200)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/config", config_status, methods=["GET"]),
        Route("/v1/config/reload", reload_config, methods=["POST"]),
    ]
