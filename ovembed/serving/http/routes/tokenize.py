"""OVMS's ``POST /v3/tokenize``; vLLM's ``POST /tokenize`` and ``POST /detokenize``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.http.responses import JSONResponse, json_response
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases.tokenize import TokenizeRequest, detokenize, tokenize, tokenize_prompt
from ovembed.serving.wire import tokenize as wire
from ovembed.serving.wire import vllm_tokenize


async def tokenize_texts(request: Request) -> Response:
    body = await deps.json_body(request)
    cfg = deps.config(request)
    req = wire.parse_tokenize_request(body, max_inputs=cfg.max_inputs)
    ids = await tokenize(deps.registry(request), deps.context(request), TokenizeRequest(
        req.model, req.texts, max_length=req.max_length, pad_to_max_length=req.pad_to_max_length,
        add_special_tokens=req.add_special_tokens, padding_side=req.padding_side,
        max_tokens=cfg.max_request_tokens))
    return await json_response(lambda: wire.tokenize_response(req, ids), items=sum(len(i) for i in ids))


async def vllm_tokenize_prompt(request: Request) -> Response:
    req = vllm_tokenize.parse_tokenize(await deps.json_body(request))
    ids, max_len = await tokenize_prompt(deps.registry(request), deps.context(request), req.model, req.prompt,
                                         add_special_tokens=req.add_special_tokens,
                                         max_tokens=deps.config(request).max_request_tokens)
    return await json_response(lambda: vllm_tokenize.tokenize_response(ids, max_len), items=len(ids))


async def vllm_detokenize(request: Request) -> Response:
    req = vllm_tokenize.parse_detokenize(await deps.json_body(request),
                                         max_tokens=deps.config(request).max_request_tokens)
    text = await detokenize(deps.registry(request), deps.context(request), req.model, req.tokens)
    return JSONResponse(vllm_tokenize.detokenize_response(text))


def routes() -> list[BaseRoute]:
    paths = ("/v3/tokenize", "/v1/tokenize", "/v3/v1/tokenize")  # OVMS matches any /v1/ or /v3/ prefix
    return [*(Route(path, tokenize_texts, methods=["POST"]) for path in paths),
            Route("/tokenize", vllm_tokenize_prompt, methods=["POST"]),
            Route("/detokenize", vllm_detokenize, methods=["POST"])]
