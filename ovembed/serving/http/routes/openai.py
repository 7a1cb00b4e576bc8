"""OpenAI-compatible routes: embeddings (``/v3``, ``/v1`` and ``/v3/v1``) and models."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import JSONResponse
from ovembed.serving.http.routes import deps
from ovembed.serving.wire import openai, vectors

CLIENT_CLOSED = 499  # nginx's "client closed request": only ever seen in the access log


async def embeddings(request: Request) -> Response:
    body = await deps.json_body(request)
    req = openai.parse_embeddings_request(body, max_inputs=deps.config(request).max_inputs)
    servable = deps.servable(request, req.model)
    info = servable.info
    vectors.check_dimensions(req.dimensions, info)
    work = servable.embed(req.input, truncate=req.truncate)
    result = await deps.unless_disconnected(request, work)
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    vecs = vectors.select_dimensions(result.embeddings, req.dimensions, normalize=info.normalize)
    content = openai.embeddings_response(info.name, vecs, result.prompt_tokens, req.encoding_format)
    headers = timing_values(result.timings, deps.elapsed_ns(request) / 1e9)
    return JSONResponse(content, headers=headers)


async def list_models(request: Request) -> Response:
    infos = [servable.info for servable in deps.registry(request).available()]
    return JSONResponse(openai.model_list(infos))


async def get_model(request: Request) -> Response:
    servable = deps.servable(request, request.path_params["model_id"])
    return JSONResponse(openai.model_card(servable.info))


def routes() -> list[BaseRoute]:
    embed = [Route(path, embeddings, methods=["POST"])
             for path in ("/v3/embeddings", "/v1/embeddings", "/v3/v1/embeddings")]
    models = [Route(f"{prefix}/models", list_models, methods=["GET"]) for prefix in ("/v3", "/v1")]
    model = [Route(f"{prefix}/models/{{model_id:path}}", get_model, methods=["GET"])
             for prefix in ("/v3", "/v1")]
    return [*embed, *models, *model]
