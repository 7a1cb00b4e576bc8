"""Token vectors: TEI's ``POST /embed_all`` (``/v3/embed_all`` too, beside OVMS's ``/v3`` routes).

``/v3/embeddings`` naming a token model answers with token vectors too (:func:`openai_token_embeddings`, called by
:mod:`.openai`); rerank by MaxSim is the rerank routes' (a token model serves rerank requests).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.errors import InvalidInput
from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import JSONResponse
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases.muvera import embed_muvera
from ovembed.serving.usecases.token_embed import TokenEmbedRequest, embed_tokens
from ovembed.serving.wire import muvera as muvera_wire
from ovembed.serving.wire import token_embed
from ovembed.serving.wire.openai import EmbeddingsRequest

PATHS = ("/embed_all", "/v3/embed_all")


async def tei_embed_all(request: Request) -> Response:
    body = await deps.json_body(request)
    parsed = token_embed.parse_embed_all_request(body, max_inputs=deps.config(request).max_inputs)
    ctx = deps.context(request)
    result = await embed_tokens(deps.registry(request), ctx, parsed.request)
    headers = {**timing_values(result.timings, ctx.elapsed()), "x-prompt-tokens": str(result.prompt_tokens)}
    return JSONResponse(token_embed.tei_response(result), headers=headers)


async def openai_token_embeddings(request: Request, req: EmbeddingsRequest,
                                  fde: dict[str, Any] | None = None) -> Response:
    """``/v3/embeddings`` over a token model: ``req`` is the parsed OpenAI request (wire.openai); ``fde`` the
    request's MUVERA changes (wire.muvera; None: token vectors)."""
    if fde is None:
        token_embed.check_format(req.encoding_format)
    elif req.encoding_format not in muvera_wire.FORMATS:
        raise InvalidInput(f"encoding_format '{req.encoding_format}' does not apply to MUVERA vectors (use one of "
                           f"{', '.join(muvera_wire.FORMATS)})", param="encoding_format")
    if req.dimensions is not None:
        raise InvalidInput("'dimensions' does not apply to a token model", param="dimensions")
    ctx = deps.context(request)
    extra = req.retrieval
    token_req = TokenEmbedRequest(
        req.model, req.input, truncate=req.truncate, prompt=extra.prompt, prompt_name=extra.prompt_name,
        input_type=extra.input_type, truncation_direction=extra.truncation_direction)
    if fde is not None:
        encoded = await embed_muvera(deps.registry(request), ctx, token_req, fde)
        return JSONResponse(muvera_wire.openai_response(encoded, req.encoding_format, req.vllm),
                            headers=timing_values(encoded.timings, ctx.elapsed()))
    result = await embed_tokens(deps.registry(request), ctx, token_req)
    return JSONResponse(token_embed.openai_response(result, req.encoding_format),
                        headers=timing_values(result.timings, ctx.elapsed()))


def routes() -> list[BaseRoute]:
    return [Route(path, tei_embed_all, methods=["POST"]) for path in PATHS]
