"""Sparse embeddings: TEI's ``POST /embed_sparse`` (``/v3/embed_sparse`` too, beside OVMS's ``/v3`` routes).

The OpenAI shape is ``encoding_format: "sparse"`` on ``/v3/embeddings`` (:mod:`.openai`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import JSONResponse
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases.sparse import embed_sparse
from ovembed.serving.wire import sparse

PATHS = ("/embed_sparse", "/v3/embed_sparse")


async def tei_embed_sparse(request: Request) -> Response:
    body = await deps.json_body(request)
    parsed = sparse.parse_embed_sparse_request(body, max_inputs=deps.config(request).max_inputs)
    ctx = deps.context(request)
    result = await embed_sparse(deps.registry(request), ctx, parsed.request)
    headers = {**timing_values(result.timings, ctx.elapsed()), "x-prompt-tokens": str(result.prompt_tokens)}
    return JSONResponse(sparse.tei_response(result), headers=headers)


def routes() -> list[BaseRoute]:
    return [Route(path, tei_embed_sparse, methods=["POST"]) for path in PATHS]
