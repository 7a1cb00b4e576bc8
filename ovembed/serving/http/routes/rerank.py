"""Rerank routes: the Cohere/OVMS/Jina shape and TEI's ``/rerank``.

``/v3/rerank`` (OVMS), ``/v1/rerank`` and ``/v2/rerank`` (Cohere's SDKs with ``base_url`` the server
root), ``/v3/v1/rerank`` and ``/v3/v2/rerank`` (the SDKs with ``base_url=.../v3``, as OVMS's docs say).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import JSONResponse
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases.rerank import rerank
from ovembed.serving.wire import rerank as cohere
from ovembed.serving.wire import tei

COHERE_PATHS = ("/v3/rerank", "/v1/rerank", "/v2/rerank", "/v3/v1/rerank", "/v3/v2/rerank")
TEI_PATH = "/rerank"


async def cohere_rerank(request: Request) -> Response:
    body = await deps.json_body(request)
    parsed = cohere.parse_rerank_request(body, max_documents=deps.config(request).max_inputs)
    ctx = deps.context(request)
    ranking = await rerank(deps.registry(request), ctx, parsed.request)
    return JSONResponse(cohere.rerank_response(parsed, ranking, ctx.request_id),
                        headers=timing_values(ranking.timings, ctx.elapsed()))


async def tei_rerank(request: Request) -> Response:
    body = await deps.json_body(request)
    parsed = tei.parse_rerank_request(body, max_documents=deps.config(request).max_inputs)
    ctx = deps.context(request)
    ranking = await rerank(deps.registry(request), ctx, parsed.request)
    return JSONResponse(tei.rerank_response(parsed, ranking), headers=timing_values(ranking.timings, ctx.elapsed()))


def routes() -> list[BaseRoute]:
    return [*(Route(path, cohere_rerank, methods=["POST"]) for path in COHERE_PATHS),
            Route(TEI_PATH, tei_rerank, methods=["POST"])]
