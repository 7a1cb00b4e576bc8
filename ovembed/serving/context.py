"""What every front end knows about a request, whatever its transport.

The request id (accepted from the client when it is well formed, else a new one), the bearer
check, the ``x-*-time`` timing values and the access-log line are the same for REST (the
ASGI middleware in :mod:`ovembed.serving.http.middleware`) and gRPC (the RPC wrapper in
:mod:`ovembed.serving.grpc.service`); both use this module and neither imports the other.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ovembed.errors import ClientGone, InvalidInput, Unauthorized
from ovembed.serving.api import Timings

if TYPE_CHECKING:
    from ovembed.serving.tracing import RequestTrace

# The id of the request being handled, for log lines (see http.server.RequestIdFilter). A
# ContextVar follows the request into tasks it spawns, e.g. the engine's embed call.
REQUEST_ID: ContextVar[str | None] = ContextVar("ovembed_request_id", default=None)

_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

access_logger = logging.getLogger("ovembed.access")
T = TypeVar("T")


def request_id(incoming: str | None) -> str:
    """The client's ``x-request-id`` when it is 1-128 of ``[A-Za-z0-9._:-]``, else a new one."""
    return incoming if incoming and _VALID_ID.fullmatch(incoming) else uuid.uuid4().hex


TIMEOUT_HEADER = "x-request-timeout"


def request_deadline(header: str | None, default: float, now: float,
                     remaining: float | None = None) -> float | None:
    """When the request's time runs out (``now``'s clock: ``time.monotonic()``), or None: the
    shortest of ``header`` (``x-request-timeout``, seconds), the server's ``default``
    (``--request_timeout``, 0: none) and ``remaining`` (a gRPC deadline's time left). A malformed
    header is ``InvalidInput`` (400)."""
    limits = [default] if default > 0 else []
    if remaining is not None:
        limits.append(max(0.0, remaining))
    if header is not None:
        try:
            seconds = float(header.strip())
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise InvalidInput(f"{TIMEOUT_HEADER} must be a positive number of seconds, got {header[:40]!r}",
                               param=TIMEOUT_HEADER)
        limits.append(seconds)
    return now + min(limits) if limits else None


def check_bearer(header: str | None, key: bytes, *, where: str) -> None:
    """Raise Unauthorized unless ``header`` is ``Bearer <key>`` (constant-time compare).

    ``where`` names how the client sends it: "the header 'Authorization" or "the metadata 'authorization".
    """
    if not header:
        raise Unauthorized(f"Missing API key: send {where}: Bearer <key>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key):
        raise Unauthorized("Invalid API key")


def _ms(seconds: float) -> str:
    """Milliseconds with up to 3 decimals ("0.412", "3"): a short query's whole cost is ~1 ms."""
    return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".") or "0"


def timing_values(timings: Timings, total_seconds: float) -> dict[str, str]:
    """TEI's ``x-*-time`` values (HTTP headers, gRPC trailing metadata), in milliseconds (fractional)."""
    return {
        "x-tokenization-time": _ms(timings.tokenization),
        "x-queue-time": _ms(timings.queue),
        "x-inference-time": _ms(timings.inference),
        "x-total-time": _ms(total_seconds),
    }


def log_access(level: int, peer: str, what: str, outcome: str, elapsed_ns: int) -> None:
    """One access-log line: ``peer "what" outcome 1.2ms``."""
    if access_logger.isEnabledFor(level):
        access_logger.log(level, '%s "%s" %s %.1fms', peer, what, outcome, elapsed_ns / 1e6)


@dataclass
class RequestContext:
    """One request, as every front end and use case sees it.

    Created by the transport (HTTP middleware, gRPC wrapper) when the request arrives. Use cases
    record the configured model the request is about in :attr:`model` (the ``model`` label of the
    request metrics; unknown names never become label values) and wrap engine work in
    :meth:`guard`, which cancels it when the client goes away.
    """

    request_id: str
    start_ns: int = field(default_factory=time.perf_counter_ns)
    model: str | None = None
    # Resolves when the client has gone away (HTTP: the ASGI disconnect message); None: never.
    client_gone: Callable[[], Awaitable[None]] | None = None
    trace: RequestTrace | None = None  # its OpenTelemetry trace (serving.tracing); None: off or not sampled

    def elapsed(self) -> float:
        """Seconds since the request arrived."""
        return (time.perf_counter_ns() - self.start_ns) / 1e9

    async def guard(self, work: Coroutine[Any, Any, T]) -> T:
        """Await ``work``; if the client goes away first, cancel it and raise :class:`ClientGone`.

        Cancelling the engine's ``embed`` drops its queued work, so no compute is wasted.
        """
        if self.client_gone is None:
            result = await work
            if self.trace is not None:
                self.trace.engine_done()
            return result
        task = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(self.client_gone())
        # The client going away cancels the work: a done-callback, not asyncio.wait(), which
        # builds a future and callbacks on both tasks for every request (single-query latency).
        watcher.add_done_callback(functools.partial(_cancel, task))
        try:
            result = await task  # cancelling the caller (server shutdown) cancels the work too
            if self.trace is not None:
                self.trace.engine_done()
            return result
        except asyncio.CancelledError:
            if not watcher.done() or watcher.cancelled():
                raise  # the caller was cancelled, not the client gone
        finally:
            watcher.cancel()
            # An error re-raised by ``await task`` carries this frame in its traceback, and the
            # frame holds the task, which holds the error: a cycle that kept every rejected
            # request's tokenized batch alive until a full gc pass. Drop the references.
            del task, watcher
        raise ClientGone("The client closed the connection before the response was ready")


def _cancel(task: asyncio.Future[Any], _watcher: asyncio.Future[Any]) -> None:
    task.cancel()
