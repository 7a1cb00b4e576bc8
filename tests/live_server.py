"""A real ``python -m ovembed serve`` on a free loopback port, for end-to-end tests.

    with live_server(config_path, tmp_path / "server.log", "--api_key_file", key) as server:
        httpx.get(f"{server.base}/v3/models", headers=...)

The server is started with a clean environment (no OVEMBED_* variables, no API_KEY, so only the
flags given here apply), polled until ``/v2/health/ready`` answers 200, and stopped with SIGTERM.
A server that exits or is not ready in time fails the test with its log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LiveServer:
    base: str  # http://127.0.0.1:<port>
    port: int
    log: Path
    proc: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without ovembed's settings (OVEMBED_*, API_KEY), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "API_KEY" and not k.startswith("OVEMBED_")}
    env.update(extra)
    return env


def start_server(config_path: Path, log: Path, *extra: str, ready_timeout: float = 300) -> LiveServer:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ovembed", "serve", "--config_path", str(config_path),
             "--rest_bind_address", "127.0.0.1", "--rest_port", str(port), *extra],
            stdout=out, stderr=subprocess.STDOUT, env=clean_env(), cwd=ROOT)
    server = LiveServer(f"http://127.0.0.1:{port}", port, log, proc)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ovembed serve exited with {proc.returncode}:\n{server.log_text()}")
        try:
            if httpx.get(f"{server.base}/v2/health/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(server)
    pytest.fail(f"ovembed serve not ready after {ready_timeout:.0f} s:\n{server.log_text()}")


def stop_server(server: LiveServer, timeout: float = 60) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        return server.proc.wait()


@contextmanager
def live_server(config_path: Path, log: Path, *extra: str, ready_timeout: float = 300) -> Iterator[LiveServer]:
    server = start_server(config_path, log, *extra, ready_timeout=ready_timeout)
    try:
        yield server
    finally:
        stop_server(server)
