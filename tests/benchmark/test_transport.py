"""The benchmark's HTTP/1.1 client against a scripted loopback server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from ovembed.benchmark.transport import Http11Client, TransportError, TransportTimeout

Script = Callable[[int, asyncio.StreamWriter], Awaitable[None]]  # (request number, writer)


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return await reader.readexactly(length)


async def _serve(script: Script, test: Callable[[str], Awaitable[None]]) -> list[int]:
    """Run ``test`` against a server answering each request with ``script``.

    Returns how many requests each accepted connection carried.
    """
    per_connection: list[int] = []
    writers: list[asyncio.StreamWriter] = []
    numbered = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal numbered
        writers.append(writer)
        per_connection.append(0)
        slot = len(per_connection) - 1
        while not writer.is_closing() and await _read_request(reader) is not None:
            numbered += 1
            per_connection[slot] += 1
            await script(numbered, writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await test(f"http://127.0.0.1:{port}/v3/embeddings")
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.sleep(0)  # let the transports finish closing before the loop ends
        await server.wait_closed()
    return per_connection


def _reply(body: bytes, *extra: bytes) -> bytes:
    return b"\r\n".join([b"HTTP/1.1 200 OK", b"content-type: application/json",
                         b"content-length: %d" % len(body), *extra, b"", body])


def test_keep_alive_reuses_one_connection() -> None:
    async def script(n: int, writer: asyncio.StreamWriter) -> None:
        writer.write(_reply(b'{"n": %d}' % n))

    async def test(url: str) -> None:
        async with Http11Client(url, headers={"authorization": "Bearer k"}) as client:
            for n in range(1, 6):
                response = await client.post(b"{}")
                assert (response.status, response.content) == (200, b'{"n": %d}' % n)

    assert asyncio.run(_serve(script, test)) == [5]


def test_chunked_body_and_connection_close() -> None:
    async def script(n: int, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\ntransfer-encoding: chunked\r\n"
                     b"connection: close\r\n\r\n4\r\n{\"a\"\r\n4\r\n: 1}\r\n0\r\n\r\n")
        writer.close()

    async def test(url: str) -> None:
        async with Http11Client(url) as client:
            for _ in range(2):
                response = await client.post(b"{}")
                assert (response.status, response.reason) == (429, "Too Many Requests")
                assert response.content == b'{"a": 1}'

    assert asyncio.run(_serve(script, test)) == [1, 1]


def test_stale_keep_alive_connection_is_retried_once() -> None:
    async def script(n: int, writer: asyncio.StreamWriter) -> None:
        writer.write(_reply(b"ok"))  # says keep-alive, then hangs up (an idle timeout)
        await writer.drain()
        writer.close()

    async def test(url: str) -> None:
        async with Http11Client(url) as client:
            for _ in range(3):
                assert (await client.post(b"{}")).content == b"ok"

    assert asyncio.run(_serve(script, test)) == [1, 1, 1]


def test_errors() -> None:
    async def script(n: int, writer: asyncio.StreamWriter) -> None:
        if n == 1:
            writer.close()  # no answer at all on a fresh connection
        elif n == 2:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort")
            await writer.drain()
            writer.close()
        else:
            await asyncio.sleep(1)

    async def test(url: str) -> None:
        async with Http11Client(url, timeout=0.2) as client:
            with pytest.raises(TransportError, match="without answering"):
                await client.post(b"{}")
            with pytest.raises(TransportError, match="broken response"):
                await client.post(b"{}")
            with pytest.raises(TransportTimeout):
                await client.post(b"{}")

    asyncio.run(_serve(script, test))


def test_refused_and_bad_url() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def test() -> None:
        async with Http11Client(f"http://127.0.0.1:{port}/v3/embeddings") as client:
            with pytest.raises(TransportError) as info:
                await client.post(b"{}")
            assert not isinstance(info.value, TransportTimeout)

    asyncio.run(test())
    with pytest.raises(ValueError):
        Http11Client("ftp://127.0.0.1/x")


def test_other_framings() -> None:
    async def script(n: int, writer: asyncio.StreamWriter) -> None:
        if n == 1:  # informational first, then the response
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + _reply(b"after 100"))
        elif n == 2:
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif n == 3:  # HTTP/1.0, no length: the body runs to the end of the connection
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil eof")
            await writer.drain()
            writer.close()
        else:
            writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")

    async def test(url: str) -> None:
        async with Http11Client(url) as client:
            assert (await client.post(b"{}")).content == b"after 100"
            assert (await client.post(b"{}")).status == 204
            assert (await client.post(b"{}")).content == b"until eof"
            with pytest.raises(TransportError, match="not an HTTP/1 status line"):
                await client.post(b"{}")

    assert asyncio.run(_serve(script, test)) == [3, 1]


def test_header_injection_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid header"):
        Http11Client("http://127.0.0.1:1/x", headers={"authorization": "Bearer a\r\nx: y"})
