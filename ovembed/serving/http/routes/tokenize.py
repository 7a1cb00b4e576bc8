"""OVMS's ``POST /v3/tokenize``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ovembed.serving.http.responses import JSONResponse
from ovembed.serving.http.routes import deps
from ovembed.serving.wire import tokenize


async def tokenize_texts(request: Request) -> Response:
    body = await deps.json_body(request)
    req = tokenize.parse_tokenize_request(body, max_inputs=deps.config(request).max_inputs)
    servable = deps.servable(request, req.model)
    ids = servable.tokenize(
        list(req.texts),
        add_special_tokens=req.add_special_tokens,
        max_length=req.max_length,
        pad_to_max_length=req.pad_to_max_length,
        padding_side=req.padding_side,
    )
    return JSONResponse(tokenize.tokenize_response(req, ids))


def routes() -> list[BaseRoute]:
    return [Route("/v3/tokenize", tokenize_texts, methods=["POST"])]
