"""uvicorn's HTTP/1.1 protocols with a deadline for the request head.

uvicorn drops idle keep-alive connections (``timeout_keep_alive``) but stops that timer at the
first byte, and has no deadline for reading the rest of the headers: 200 clients sending a byte
a second stay connected for ever (slowloris). The protocols here close a connection whose
request line and headers are not complete ``--header_timeout`` seconds after the connection
opened or its previous response ended. Bodies are not affected (a large upload may take its
time), nor is the time the server takes to answer. ``--max_connections`` is uvicorn's
``limit_concurrency``: connections beyond it are answered 503 at once.

Two parsers, the same deadline: :class:`HttpToolsHeaderTimeoutProtocol` over httptools (the C
parser of ``uvicorn[standard]``, used when it is installed: it takes less of the event loop's
time per request than the pure-Python h11) and :class:`HeaderTimeoutProtocol` over h11. h11
refuses a request head over ``h11_max_incomplete_event_size`` (16 KiB) with 400; httptools has
no such limit of its own, so its protocol counts the head's bytes and does the same.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("ovembed.serving")

Parser = Literal["auto", "h11", "httptools"]
_DEFAULT_MAX_HEAD = 16 * 1024  # uvicorn's h11_max_incomplete_event_size default


class _HeadDeadline:
    """The timer both protocols share; subclasses say whether a request head is awaited."""

    header_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: tuple[str, int] | None

    def _head_pending(self) -> bool:
        raise NotImplementedError

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        if self.header_timeout > 0:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._head_pending() and not self.transport.is_closing():
            peer = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            logger.debug("%s: request headers not complete after %.0f s, closing", peer, self.header_timeout)
            self.transport.close()


class HeaderTimeoutProtocol(_HeadDeadline, H11Protocol):
    """:class:`H11Protocol` plus the head deadline; ``header_timeout`` is set by :func:`with_header_timeout`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request head has been parsed
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _head_pending(self) -> bool:
        return self.conn.their_state is h11.IDLE


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing, uvicorn answers 400 and closes."""


@functools.cache
def _httptools_protocol() -> type[_HeadDeadline] | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is not installed
        return None

    class HttpToolsHeaderTimeoutProtocol(_HeadDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol plus the head deadline and a head size limit."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._awaiting_head = True
            self._head_bytes = 0
            self._max_head = int(self.config.h11_max_incomplete_event_size or _DEFAULT_MAX_HEAD)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def on_message_begin(self) -> None:
            self._head_bytes = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._awaiting_head = False
            self._cancel_head_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)  # the next request's head was already parsed
            super().on_response_complete()
            if not pipelined and not self.transport.is_closing():
                self._awaiting_head = True
                self._arm_head_timer()  # the next request on this connection gets its own deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _head_pending(self) -> bool:
            return self._awaiting_head

        def _count(self, n: int) -> None:
            self._head_bytes += n
            if self._head_bytes > self._max_head:
                raise _HeadTooLarge(f"request head over {self._max_head} bytes")

    return HttpToolsHeaderTimeoutProtocol


def with_header_timeout(seconds: float, parser: Parser = "auto") -> type[Any]:
    """The protocol class for uvicorn's ``http`` setting, with this deadline: httptools when
    ``parser`` is ``httptools``, or ``auto`` and httptools is installed; else h11."""
    base: type[_HeadDeadline] | None = HeaderTimeoutProtocol
    if parser != "h11":
        fast = _httptools_protocol()
        if fast is None and parser == "httptools":
            raise RuntimeError("httptools is not installed (pip install httptools)")
        base = fast or base
    assert base is not None
    return type(base.__name__, (base,), {"header_timeout": float(seconds)})
