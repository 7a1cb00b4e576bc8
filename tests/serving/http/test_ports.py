"""A port in use is one line at start, before any model loads (ovembed/serving/http/server.py)."""
from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovembed.exitcodes import ExitCode


@pytest.fixture
def taken() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def _free() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    # a folder that is no model: were the port checked after loading, the error would be about the model
    return subprocess.run([sys.executable, "-m", "ovembed", "serve", "--model_path", str(tmp_path), "--allow_empty",
                           *flags],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("flag", ["--rest_port", "--port"])
def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path, taken: int, flag: str) -> None:
    other = ["--port", str(_free())] if flag == "--rest_port" else ["--rest_port", str(_free())]
    proc = _serve(tmp_path, flag, str(taken), *other)
    assert proc.returncode == ExitCode.FAILURE
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and errors[0].endswith(
        f"ovembed serve: port {taken} is in use ({flag}): stop the process that holds it or choose another port")
    assert "Traceback" not in proc.stderr and "loading" not in proc.stderr.lower()


def test_accepted_connections_have_tcp_nodelay() -> None:
    """The pre-bound REST socket serves through asyncio, which sets TCP_NODELAY on accepted sockets only
    when the listening socket says IPPROTO_TCP; without it keep-alive clients waited 40 ms per request
    (the response's second write held for the client's delayed ACK)."""
    import asyncio

    from ovembed.serving.http.server import listen

    async def check() -> int:
        sock = listen("127.0.0.1", 0, "--rest_port")
        seen: list[int] = []

        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=sock)
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()
        return seen[0]

    assert asyncio.run(check()) != 0
