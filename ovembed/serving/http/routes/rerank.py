"""Rerank routes: one handler for every peer's rerank body, on every peer's path.

``/rerank`` (TEI, vLLM), ``/v1/rerank`` (Jina, vLLM, Cohere v1), ``/v2/rerank`` (Cohere v2, vLLM),
``/v3/rerank`` (OVMS), and ``/v3/v1/rerank``, ``/v3/v2/rerank`` (Cohere's SDKs with ``base_url=.../v3``,
as OVMS's docs say). A body with ``texts`` is TEI's (on ``/rerank``: any body without ``documents``)
and gets TEI's answer and error body; a body with ``documents`` is the Cohere/Jina/vLLM shape, read in
the dialect of the path (:data:`DIALECTS`, why in :mod:`ovembed.serving.wire.rerank`) and answered
with OpenAI's error envelope.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import JSONResponse, set_error_family
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases.rerank import rerank
from ovembed.serving.wire import rerank as cohere
from ovembed.serving.wire import tei

DIALECTS: dict[str, cohere.Dialect] = {
    "/rerank": cohere.VLLM, "/v1/rerank": cohere.VLLM,
    "/v2/rerank": cohere.COHERE, "/v3/rerank": cohere.COHERE, "/v3/v1/rerank": cohere.COHERE,
    "/v3/v2/rerank": cohere.COHERE,
}


def is_tei_body(body: dict[str, object], path: str) -> bool:
    """TEI's body names its documents ``texts``; every other peer's ``documents``. On TEI's own
    ``/rerank`` a body with neither is TEI's (its error names ``texts``)."""
    return "documents" not in body and ("texts" in body or path == "/rerank")


async def rerank_any(request: Request) -> Response:
    body = await deps.json_body(request)
    if is_tei_body(body, request.url.path):
        set_error_family(request, "tei")
        return await _tei(request, body)
    set_error_family(request, "openai")
    dialect = DIALECTS.get(request.url.path, cohere.COHERE)
    parsed = cohere.parse_rerank_request(body, max_documents=deps.config(request).max_inputs, dialect=dialect)
    ctx = deps.context(request)
    ranking = await rerank(deps.registry(request), ctx, parsed.request)
    return JSONResponse(cohere.rerank_response(parsed, ranking, ctx.request_id),
                        headers=timing_values(ranking.timings, ctx.elapsed()))


async def _tei(request: Request, body: dict[str, object]) -> Response:
    parsed = tei.parse_rerank_request(body, max_documents=deps.config(request).max_inputs)
    ctx = deps.context(request)
    ranking = await rerank(deps.registry(request), ctx, parsed.request)
    return JSONResponse(tei.rerank_response(parsed, ranking), headers=timing_values(ranking.timings, ctx.elapsed()))


def routes() -> list[BaseRoute]:
    return [Route(path, rerank_any, methods=["POST"]) for path in DIALECTS]
