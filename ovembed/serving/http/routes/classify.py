"""Sequence classification: TEI's ``POST /predict`` (TEI's error body) and vLLM's ``POST /classify`` and
``/v1/classify`` (the OpenAI error envelope)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.context import timing_values
from ovembed.serving.http.responses import JSONResponse
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases.classify import classify
from ovembed.serving.wire import classify as wire

TEI_PATHS = ("/predict",)
VLLM_PATHS = ("/classify", "/v1/classify")


async def tei_predict(request: Request) -> Response:
    body = await deps.json_body(request)
    parsed = wire.parse_predict_request(body, max_inputs=deps.config(request).max_inputs)
    ctx = deps.context(request)
    result = await classify(deps.registry(request), ctx, parsed.request)
    headers = {**timing_values(result.timings, ctx.elapsed()), "x-prompt-tokens": str(result.prompt_tokens)}
    return JSONResponse(wire.predict_response(parsed, result), headers=headers)


async def vllm_classify(request: Request) -> Response:
    body = await deps.json_body(request)
    parsed = wire.parse_classify_request(body, max_inputs=deps.config(request).max_inputs)
    ctx = deps.context(request)
    result = await classify(deps.registry(request), ctx, parsed.request)
    return JSONResponse(wire.classify_response(parsed, result, ctx.request_id),
                        headers=timing_values(result.timings, ctx.elapsed()))


def routes() -> list[BaseRoute]:
    return [*(Route(path, tei_predict, methods=["POST"]) for path in TEI_PATHS),
            *(Route(path, vllm_classify, methods=["POST"]) for path in VLLM_PATHS)]
