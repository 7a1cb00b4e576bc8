"""uvicorn's h11 protocol with a deadline for the request head.

uvicorn drops idle keep-alive connections (``timeout_keep_alive``) but stops that timer at the
first byte, and has no deadline for reading the rest of the headers: 200 clients sending a byte
a second stay connected for ever (slowloris). :class:`HeaderTimeoutProtocol` closes a connection
whose request line and headers are not complete ``--header_timeout`` seconds after the
connection opened or its previous response ended. Bodies are not affected (a large upload may
take its time), nor is the time the server takes to answer. ``--max_connections`` is uvicorn's
``limit_concurrency``: connections beyond it are answered 503 at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("ovembed.serving")


class HeaderTimeoutProtocol(H11Protocol):
    """:class:`H11Protocol` plus the head deadline; ``header_timeout`` is set by :func:`with_header_timeout`."""

    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None

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
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            peer = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
            logger.debug("%s: request headers not complete after %.0f s, closing", peer, self.header_timeout)
            self.transport.close()


def with_header_timeout(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class for uvicorn's ``http`` setting, with this deadline."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": float(seconds)})
