"""Slow-header clients are closed (ovembed/serving/http/protocol.py) and connections are bounded
(--max_connections), through a real uvicorn server on a free loopback port, with both HTTP
parsers (h11 and httptools)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import uvicorn

from ovembed.serving.http.protocol import Parser, with_header_timeout
from tests.serving.fakes import FakeRegistry, FakeServable, make_app
from tests.support.live_server import free_port

pytestmark = pytest.mark.reliability
PARSERS = pytest.mark.parametrize("parser", ["h11", "httptools"])


async def _serve(**options: object) -> tuple[uvicorn.Server, asyncio.Future[None], int]:
    port = free_port()
    config = uvicorn.Config(make_app(FakeRegistry(FakeServable("fake"))), host="127.0.0.1", port=port,
                            log_config=None, access_log=False, **options)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    return server, serving, port


async def _closed(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), within) == b""
    except asyncio.TimeoutError:
        return False


@PARSERS
def test_a_client_that_never_finishes_its_headers_is_closed(parser: Parser) -> None:
    async def scenario() -> None:
        server, serving, port = await _serve(http=with_header_timeout(0.3, parser))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")  # and then nothing
            await writer.drain()
            assert await _closed(reader, 10)
            # a complete request is answered, and the next one on the connection gets its own deadline
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200")
            writer.write(b"GET /v2/health/live HTTP/1.1\r\n")
            await writer.drain()
            assert await _closed(reader, 10)
        finally:
            server.should_exit = True
            await serving

    asyncio.run(scenario())


@PARSERS
def test_connections_beyond_the_limit_get_503(parser: Parser) -> None:
    async def scenario() -> None:
        server, serving, port = await _serve(http=with_header_timeout(30, parser), limit_concurrency=2)
        try:
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 503")
            for _, w in idle:
                w.close()
        finally:
            server.should_exit = True
            await serving

    asyncio.run(scenario())


@PARSERS
def test_a_request_head_over_16_kib_gets_400_and_a_close(parser: Parser) -> None:
    async def scenario() -> None:
        server, serving, port = await _serve(http=with_header_timeout(30, parser))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 490) for i in range(40))  # 20 KB, no blank line
            writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n" + pad)
            await writer.drain()
            answer = b""
            with contextlib.suppress(ConnectionResetError):  # closed with unread bytes: a reset
                while chunk := await asyncio.wait_for(reader.read(65536), 10):  # to the end: closed
                    answer += chunk
            assert answer.startswith(b"HTTP/1.1 400") and answer.endswith(b"Invalid HTTP request received.")
            # a head just under the limit is answered
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nX-Pad: %s\r\n\r\n"
                         % (b"a" * 15000))
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200")
            writer.close()
        finally:
            server.should_exit = True
            await serving

    asyncio.run(scenario())


def test_auto_picks_httptools_when_installed() -> None:
    pytest.importorskip("httptools")
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    chosen = with_header_timeout(5)
    assert issubclass(chosen, HttpToolsProtocol) and chosen.header_timeout == 5.0
    assert not issubclass(with_header_timeout(5, "h11"), HttpToolsProtocol)
