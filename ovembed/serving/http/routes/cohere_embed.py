"""Cohere-compatible ``POST /v2/embed`` (and ``/v3/v2/embed``), for ``cohere.ClientV2.embed``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import json_response
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases.embed import EmbedRequest, embed
from ovembed.serving.wire import cohere_embed as wire


async def embed_texts(request: Request) -> Response:
    body = await deps.json_body(request)
    req = wire.parse_embed_request(body, max_inputs=deps.config(request).max_inputs)
    ctx = deps.context(request)
    result = await embed(deps.registry(request), ctx, EmbedRequest(
        req.model, req.texts, truncate=req.truncate, dimensions=req.dimensions, input_type=req.input_type,
        truncation_direction=req.truncation_direction, max_tokens=req.max_tokens))
    return await json_response(lambda: wire.embed_response(ctx.request_id, req, result.vectors, result.prompt_tokens),
                               items=result.vectors.size, headers=timing_values(result.timings, ctx.elapsed()))


def routes() -> list[BaseRoute]:
    return [Route(path, embed_texts, methods=["POST"]) for path in ("/v2/embed", "/v3/v2/embed")]
