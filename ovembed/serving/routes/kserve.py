"""KServe v2 REST health and metadata, and OVMS's ``/v1/config`` status."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.errors import ModelNotFound, ModelNotReady
from ovembed.serving.protocol import kserve
from ovembed.serving.responses import JSONResponse
from ovembed.serving.routes import deps
from ovembed.serving.servable import ModelState


async def server_metadata(request: Request) -> Response:
    return JSONResponse(kserve.server_metadata())


async def live(request: Request) -> Response:
    return Response(status_code=200)


async def ready(request: Request) -> Response:
    return Response(status_code=200 if deps.registry(request).ready else 503)


async def model_endpoint(request: Request) -> Response:
    """``/v2/models/<name>[/versions/<v>][/ready]``: names may contain slashes."""
    registry = deps.registry(request)
    known = set(registry.names())
    target = kserve.parse_model_path(request.path_params["model_path"], known.__contains__)
    status = registry.status(target.name)  # ModelNotFound -> 404
    if target.version is not None and target.version != str(status.version):
        raise ModelNotFound(f"{target.name}/versions/{target.version}")
    if target.action == "ready":
        if status.state is not ModelState.AVAILABLE:
            raise ModelNotReady(f"The model '{target.name}' is {status.state.value.lower()}")
        return Response(status_code=200)
    servable = registry.get(target.name)  # ModelNotReady -> 503
    return JSONResponse(kserve.model_metadata(servable.info, status))


async def config_status(request: Request) -> Response:
    registry = deps.registry(request)
    statuses = [(name, registry.status(name)) for name in registry.names()]
    return JSONResponse(kserve.config_status(statuses))


def routes() -> list[BaseRoute]:
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{model_path:path}", model_endpoint, methods=["GET"]),
        Route("/v1/config", config_status, methods=["GET"]),
    ]
