"""Pure ASGI middleware: request context (id, access log, metrics, last-resort errors), auth,
body limit.

Order, outermost first: :class:`RequestContextMiddleware` -> :class:`AuthMiddleware` ->
:class:`BodySizeLimitMiddleware` -> routes. Auth runs before any body byte is read, so an
unauthenticated client cannot make the server buffer a large body. Errors raised here or in a
route are rendered by :func:`ovembed.serving.http.responses.error_response`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ovembed.config import ServeConfig
from ovembed.errors import ConfigError, PayloadTooLarge, ShuttingDown
from ovembed.serving import tracing
from ovembed.serving.api import DEADLINE
from ovembed.serving.context import (
    REQUEST_ID,
    TIMEOUT_HEADER,
    RequestContext,
    access_logger,
    check_bearer,
    log_access,
    request_deadline,
    request_id,
)
from ovembed.serving.http.responses import error_response

if TYPE_CHECKING:
    from ovembed.serving.metrics import Metrics
    from ovembed.serving.tracing import Tracer

# Probes and the Prometheus endpoint stay open so orchestrators and scrapers need no key;
# everything else needs one when configured.
_OPEN_PATHS = frozenset({"/", "/v2/health/live", "/v2/health/ready", "/metrics"})
_OPEN_PATTERN = re.compile(r"/v2/models/.+/ready")
_QUIET_PATHS = _OPEN_PATHS  # probes and scrapes are logged at DEBUG, not INFO

logger = logging.getLogger("ovembed.serving")


def is_open_path(path: str) -> bool:
    return path in _OPEN_PATHS or _OPEN_PATTERN.fullmatch(path) is not None


def load_api_key(cfg: ServeConfig, environ: Mapping[str, str]) -> str | None:
    """The key: first line of ``--api_key_file``, else env ``API_KEY``, else None (auth off)."""
    if cfg.api_key_file is not None:
        try:
            text = cfg.api_key_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read api_key_file {cfg.api_key_file}: {exc.strerror}"
            ) from None
        lines = text.splitlines()
        key = lines[0].strip() if lines else ""
        if not key:
            raise ConfigError(
                f"api_key_file {cfg.api_key_file}: the first line must be the API key"
            )
        return key
    return environ.get("API_KEY") or None


class RequestContextMiddleware:
    """Request id (``x-request-id`` in and out), deadline (``x-request-timeout``, else
    ``request_timeout`` seconds: :data:`~ovembed.serving.api.DEADLINE`), access log, request
    metrics, the server span (``tracer``; None: tracing off), and the last-resort error handler.

    The start time is kept in ``request.state.start_ns`` for timing headers and durations.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None, tracer: Tracer | None = None,
                 request_timeout: float = 0.0) -> None:
        self.app = app
        self.metrics = metrics
        self.tracer = tracer
        self.request_timeout = request_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter_ns()
        headers = Headers(scope=scope)
        rid = request_id(headers.get("x-request-id"))
        trace = None if self.tracer is None else tracing.start_http(self.tracer, scope, headers, rid)
        state = scope.setdefault("state", {})
        state["context"] = context = RequestContext(rid, start, trace=trace)
        state["request_id"], state["start_ns"] = rid, start
        token = REQUEST_ID.set(rid)
        deadline_token = None
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = rid
                if trace is not None:
                    trace.rendered()
            await send(message)

        try:
            timeout = headers.get(TIMEOUT_HEADER)
            if timeout is not None or self.request_timeout > 0:
                deadline_token = DEADLINE.set(request_deadline(timeout, self.request_timeout, time.monotonic()))
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if status:  # the response has started: too late to answer with an error
                logger.exception("error after the response started (request id %s)", rid)
            else:
                await error_response(Request(scope), exc)(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # The server cancels what is still running when --graceful_timeout runs out (client
            # disconnects do not cancel: see RequestContext.guard). Answer 503, which
            # clients and load balancers retry elsewhere, rather than uvicorn's bare 500.
            if status:
                raise
            logger.warning("request cancelled: the server is stopping and --graceful_timeout ran out")
            stopping = ShuttingDown("The server is shutting down; retry the request")
            await error_response(Request(scope), stopping)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter_ns() - start
            self._log(scope, status, elapsed)
            if self.metrics is not None:
                self.metrics.observe_http(scope, status or 499, elapsed / 1e9)
            if trace is not None:
                tracing.finish_http(trace, scope, status or 499, context.model)
            REQUEST_ID.reset(token)
            if deadline_token is not None:
                DEADLINE.reset(deadline_token)

    @staticmethod
    def _log(scope: Scope, status: int, elapsed_ns: int) -> None:
        path = scope["path"]
        level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
        if not access_logger.isEnabledFor(level):
            return
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "-"
        log_access(level, peer, f'{scope["method"]} {path} HTTP/{scope.get("http_version", "1.1")}',
                   str(status or 499), elapsed_ns)


class AuthMiddleware:
    """``Authorization: Bearer <key>`` on every route but the probes (constant-time compare)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        protected = scope["type"] == "http" and scope["method"] != "OPTIONS"
        if protected and not is_open_path(scope["path"]):
            check_bearer(Headers(scope=scope).get("authorization"), self._key, where="the header 'Authorization")
        await self.app(scope, receive, send)


class BodySizeLimitMiddleware:
    """413 when ``content-length`` or the bytes actually received exceed ``max_body_bytes``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.limit:
            raise self._too_large()
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Request body is larger than the limit of {self.limit} bytes")
