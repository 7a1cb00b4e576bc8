"""OpenAI-compatible routes: embeddings (``/v3``, ``/v1`` and ``/v3/v1``) and models."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.errors import InvalidInput
from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import JSONResponse, json_response
from ovembed.serving.http.routes import deps, multi, token_embed
from ovembed.serving.usecases import models
from ovembed.serving.usecases.embed import EmbedRequest, embed
from ovembed.serving.usecases.sparse import SparseRequest, embed_sparse
from ovembed.serving.usecases.token_embed import serves_tokens
from ovembed.serving.wire import openai
from ovembed.serving.wire import sparse as sparse_wire


async def embeddings(request: Request) -> Response:
    body = await deps.json_body(request)
    if "output" in body:  # several outputs of a bge_m3 model
        return await multi.openai_multi_embeddings(request, body)
    req = openai.parse_embeddings_request(body, max_inputs=deps.config(request).max_inputs)
    ctx = deps.context(request)
    extra = req.retrieval
    if serves_tokens(deps.registry(request), req.model):  # a token model: one vector per token per input
        return await token_embed.openai_token_embeddings(request, req)
    if req.encoding_format == "sparse":
        sparse = await embed_sparse(deps.registry(request), ctx, SparseRequest(
            req.model, req.input, truncate=req.truncate, pruning=req.pruning, **extra.request_fields()))
        return JSONResponse(sparse_wire.openai_response(sparse), headers=timing_values(sparse.timings, ctx.elapsed()))
    result = await embed(deps.registry(request), ctx, EmbedRequest(
        req.model, req.input, truncate=req.truncate, dimensions=req.dimensions, **extra.request_fields(),
        **req.vllm.request_fields()))
    headers = timing_values(result.timings, ctx.elapsed())
    if req.encoding_format in openai.BYTES_FORMATS:
        if result.chunks is not None:
            raise InvalidInput("encoding_format 'bytes' has one row per input: use chunking 'mean', or 'float'",
                               param="encoding_format")
        body, metadata = openai.embeddings_bytes(result.info.name, result.vectors, result.prompt_tokens, req.vllm,
                                                 ctx.request_id)
        if req.encoding_format == "bytes":
            headers["metadata"] = orjson.dumps(metadata).decode()
        return Response(body, headers=headers, media_type="application/octet-stream")
    return await json_response(
        lambda: openai.embeddings_response(result.info.name, result.vectors, result.prompt_tokens,
                                           req.encoding_format, result.chunks, req.vllm),
        items=result.vectors.size, headers=headers)


async def list_models(request: Request) -> Response:
    registry = deps.registry(request)
    infos = [servable.info for servable in registry.available()]
    return JSONResponse(openai.model_list(infos, models.not_available(registry)))


async def get_model(request: Request) -> Response:
    servable, _ = models.servable(deps.registry(request), deps.context(request),
                                  request.path_params["model_id"])
    return JSONResponse(openai.model_card(servable.info))


# OVMS answers its OpenAI API under /v3, /v1 and /v3/v1; GPUStack's embeddings guide sends clients to /v1-openai.
PREFIXES = ("/v3", "/v1", "/v3/v1", "/v1-openai")


def routes() -> list[BaseRoute]:
    embed_routes = [Route(f"{prefix}/embeddings", embeddings, methods=["POST"]) for prefix in PREFIXES]
    model_list = [Route(f"{prefix}/models", list_models, methods=["GET"]) for prefix in PREFIXES]
    model = [Route(f"{prefix}/models/{{model_id:path}}", get_model, methods=["GET"]) for prefix in PREFIXES]
    return [*embed_routes, *model_list, *model]
