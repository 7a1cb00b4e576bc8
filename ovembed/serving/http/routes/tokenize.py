"""OVMS's ``POST /v3/tokenize``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.http.responses import json_response
from ovembed.serving.http.routes import deps
from ovembed.serving.usecases.tokenize import TokenizeRequest, tokenize
from ovembed.serving.wire import tokenize as wire


async def tokenize_texts(request: Request) -> Response:
    body = await deps.json_body(request)
    cfg = deps.config(request)
    req = wire.parse_tokenize_request(body, max_inputs=cfg.max_inputs)
    ids = await tokenize(deps.registry(request), deps.context(request), TokenizeRequest(
        req.model, req.texts, max_length=req.max_length, pad_to_max_length=req.pad_to_max_length,
        add_special_tokens=req.add_special_tokens, padding_side=req.padding_side,
        max_tokens=cfg.max_request_tokens))
    return await json_response(lambda: wire.tokenize_response(req, ids), items=sum(len(i) for i in ids))


def routes() -> list[BaseRoute]:
    paths = ("/v3/tokenize", "/v1/tokenize", "/v3/v1/tokenize")  # OVMS matches any /v1/ or /v3/ prefix
    return [Route(path, tokenize_texts, methods=["POST"]) for path in paths]
