"""Several outputs of a bge_m3 model in one request: ``output`` on ``/v3/embeddings`` (called by :mod:`.openai`
when the body has an ``output`` field)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import JSONResponse
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases.multi import embed_multi
from ovembed.serving.wire import fields, multi


async def openai_multi_embeddings(request: Request, body: fields.JsonObject) -> Response:
    req = multi.parse_multi_request(body, max_inputs=deps.config(request).max_inputs)
    ctx = deps.context(request)
    found = await embed_multi(deps.registry(request), ctx, req)
    return JSONResponse(multi.openai_response(found), headers=timing_values(found.result.timings, ctx.elapsed()))
