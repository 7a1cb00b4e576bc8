"""JSON responses (orjson) and the one function that turns any exception into a response.

Error bodies follow the API family of the path: OpenAI's envelope
``{"error": {"message", "type", "param", "code"}}`` by default, ``{"error": "<message>"}`` for
Ollama (``/api/...``, what its clients parse) and KServe v2 (``/v2...``, its REST spec);
TEI's ``{"error", "error_type"}`` for its ``/rerank`` and ``/embed_sparse``.
Status, type and code come from :func:`ovembed.errors.describe`; the message from
:func:`ovembed.errors.public_message`, so internal details never reach a client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ovembed.errors import OvembedError, Unauthorized, describe, public_message
from ovembed.serving.metrics import ENDPOINT_STATE, UNMATCHED
from ovembed.serving.wire import tei

logger = logging.getLogger("ovembed.serving")

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
COHERE_V2_PATHS = frozenset({"/v2/rerank", "/v2/embed"})  # Cohere's v2 SDK paths, not KServe
TEI_PATHS = frozenset({"/rerank", "/embed_sparse", "/embed_all", "/predict"})  # TEI's own routes: TEI's error body


# Responses with more numbers than this (vector floats, token ids) are built and serialised in a
# worker thread, so the event loop never does O(request) work: 2048 x 384 floats are ~16 MB of
# JSON and ~60 ms of orjson, during which /v2/health/live would not answer. Below it the thread
# hop (~50 us) costs more than it saves.
OFF_LOOP_ITEMS = 65_536


async def off_loop(fn: Callable[[], Any], *, items: int) -> Any:
    """``fn()``, in a worker thread when it handles more than ``OFF_LOOP_ITEMS`` numbers."""
    if items > OFF_LOOP_ITEMS:
        return await asyncio.to_thread(fn)
    return fn()


async def json_response(build: Callable[[], Any], *, items: int, status_code: int = 200,
                        headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response whose content ``build()`` makes; built and rendered off the event loop when
    it holds more than ``OFF_LOOP_ITEMS`` numbers (see :func:`off_loop`)."""
    body = await off_loop(lambda: orjson.dumps(build(), option=orjson.OPT_SERIALIZE_NUMPY), items=items)
    return Response(body, status_code=status_code, headers=headers, media_type=JSONResponse.media_type)


class JSONResponse(Response):
    """orjson-rendered JSON; numpy arrays are serialised directly."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def api_family(path: str) -> str:
    """``"ollama"``, ``"kserve"``, ``"tei"`` or ``"openai"``: decides the error envelope."""
    if path in TEI_PATHS:
        return "tei"
    if path in COHERE_V2_PATHS:
        return "openai"
    if path.startswith("/api/"):
        return "ollama"
    if path == "/v2" or path.startswith("/v2/"):
        return "kserve"
    return "openai"


ERROR_FAMILY_STATE = "error_family"  # scope["state"] key: a handler's choice of error envelope


def set_error_family(request: Request, family: str) -> None:
    """Render this request's errors in ``family``'s envelope, whatever its path says (one path, e.g.
    ``/rerank``, serves TEI's body and vLLM's; the handler knows which it got)."""
    request.scope.setdefault("state", {})[ERROR_FAMILY_STATE] = family


def request_id(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return rid if isinstance(rid, str) else None


async def http_exception_response(request: Request, exc: Exception) -> Response:
    """Starlette's own HTTPException (the router's 404 and 405) in our envelope.

    Async on purpose: Starlette runs a sync exception handler in its thread pool, a thread hop per
    bad request (a 404 took 0.63 ms in process, 8x a health probe; a burst of them queued on the
    pool). A 404 from the router means no route serves the path: the metrics need not match the
    path against every route again (:data:`ENDPOINT_STATE`)."""
    if isinstance(exc, HTTPException) and exc.status_code == 404:
        request.scope.setdefault("state", {})[ENDPOINT_STATE] = UNMATCHED
    return error_response(request, exc)


def error_response(request: Request, exc: Exception) -> Response:
    """The response for ``exc``; server errors are logged with their traceback and request id."""
    rid = request_id(request)
    headers: dict[str, str] = {}
    param: str | None = None
    if isinstance(exc, HTTPException):
        status, message = exc.status_code, exc.detail
        kind_type = "invalid_request_error" if status < 500 else "internal_error"
        code = _HTTP_CODES.get(status)
        headers.update(exc.headers or {})
        log_traceback = status >= 500
    else:
        kind = describe(exc)
        status, kind_type, code, log_traceback = kind.status, kind.type, kind.code, kind.log_traceback
        message = public_message(exc, rid)
        if isinstance(exc, OvembedError) and status < 500:
            param = exc.param
        if isinstance(exc, Unauthorized):
            headers["www-authenticate"] = "Bearer"
        if isinstance(exc, OvembedError) and exc.retry_after is not None:
            headers["retry-after"] = str(exc.retry_after)
    if log_traceback:
        logger.error("%s %s failed (request id %s)", request.method, request.url.path, rid,
                     exc_info=(type(exc), exc, exc.__traceback__))
    family = request.scope.get("state", {}).get(ERROR_FAMILY_STATE) or api_family(request.url.path)
    if family == "openai":
        body: dict[str, Any] = {
            "error": {"message": message, "type": kind_type, "param": param, "code": code}
        }
    elif family == "tei":
        body = {"error": message, "error_type": tei.error_type(status, message)}
    else:
        body = {"error": message}
    return JSONResponse(body, status_code=status, headers=headers)
