"""KServe v2 REST health, metadata and inference (OVMS's ``/v1/config`` is in :mod:`.config`)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.errors import InvalidInput, ModelNotFound
from ovembed.serving.api import ModelState, not_ready
from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import JSONResponse, json_response, off_loop
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases import models
from ovembed.serving.usecases.embed import EmbedRequest, embed
from ovembed.serving.wire import kserve, kserve_infer


async def server_metadata(request: Request) -> Response:
    return JSONResponse(kserve.server_metadata())


async def live(request: Request) -> Response:
    return Response(status_code=200)


async def ready(request: Request) -> Response:
    """200 with no body when every configured model is AVAILABLE; else 503 saying which are not and why."""
    registry = deps.registry(request)
    if registry.ready:
        return Response(status_code=200)
    return JSONResponse(kserve.not_ready_body(models.not_available(registry)), status_code=503)


async def model_endpoint(request: Request) -> Response:
    """``/v2/models/<name>[/versions/<v>][/ready]``: names may contain slashes."""
    registry, ctx = deps.registry(request), deps.context(request)
    target = kserve.parse_model_path(request.path_params["model_path"], set(registry.names()).__contains__)
    status = models.status(registry, ctx, target.name, target.version)  # ModelNotFound -> 404
    if target.action == "ready":
        if status.state is not ModelState.AVAILABLE:
            raise not_ready(target.name, status)
        return Response(status_code=200)
    servable, _ = await models.servable(registry, ctx, target.name, target.version)  # ModelNotReady -> 503
    return JSONResponse(kserve.model_metadata(servable.info, status))


async def infer(request: Request) -> Response:
    """``/v2/models/<name>[/versions/<v>]/infer``: KServe v2 JSON, or JSON plus binary tensors."""
    registry = deps.registry(request)
    path = request.path_params["model_path"]
    target = kserve.parse_model_path(path, set(registry.names()).__contains__)
    if target.action != "metadata":  # ".../ready/infer" is no model's infer endpoint
        raise ModelNotFound(path)
    ctx = deps.context(request)
    models.status(registry, ctx, target.name, target.version)  # 404 before the body is judged
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise InvalidInput(f"Content-Encoding '{encoding}' is not supported: send the body uncompressed")
    header, binary = kserve_infer.split_body(await request.body(),
                                             request.headers.get(kserve_infer.HEADER_LENGTH))
    req = kserve_infer.parse_rest_request(await deps.parse_json(header), binary,
                                          max_inputs=deps.config(request).max_inputs)
    result = await embed(registry, ctx,
                         EmbedRequest(target.name, req.texts, truncate=req.truncate, version=target.version,
                                      **req.retrieval.request_fields()))
    headers = timing_values(result.timings, ctx.elapsed())
    if not req.binary_output:
        return await json_response(
            lambda: kserve_infer.rest_response(req, result.info.name, str(result.version), result.vectors)[0],
            items=result.vectors.size, headers=headers)

    def render() -> tuple[bytes, bytes]:
        content, raw = kserve_infer.rest_response(req, result.info.name, str(result.version), result.vectors)
        return orjson.dumps(content), raw

    json_part, raw = await off_loop(render, items=result.vectors.size)
    headers[kserve_infer.HEADER_LENGTH] = str(len(json_part))
    return Response(json_part + raw, media_type=kserve_infer.BINARY_CONTENT_TYPE, headers=headers)


def routes() -> list[BaseRoute]:
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{model_path:path}/infer", infer, methods=["POST"]),
        Route("/v2/models/{model_path:path}", model_endpoint, methods=["GET"]),
    ]
