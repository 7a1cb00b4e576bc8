"""vLLM's ``POST /score`` and ``/v1/score`` (text pairs scored by a rerank model)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import JSONResponse
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases.score import score
from ovembed.serving.wire import score as wire

PATHS = ("/score", "/v1/score")


async def score_pairs(request: Request) -> Response:
    body = await deps.json_body(request)
    parsed = wire.parse_score_request(body, max_pairs=deps.config(request).max_inputs)
    ctx = deps.context(request)
    result = await score(deps.registry(request), ctx, parsed.request)
    return JSONResponse(wire.score_response(parsed, result, ctx.request_id),
                        headers=timing_values(result.timings, ctx.elapsed()))


def routes() -> list[BaseRoute]:
    return [Route(path, score_pairs, methods=["POST"]) for path in PATHS]
