"""A real ``python -m ovembed serve`` on a free loopback port, for end-to-end tests.

    with live_server(config_path, tmp_path / "server.log", "--api_key_file", key) as server:
        httpx.get(f"{server.base_url}/v3/models", headers=...)

The server is started by :mod:`tests.support.server` with a clean
environment (no OVEMBED_* variables, no API_KEY, so only the flags given here apply), polled
until ``/v2/health/ready`` answers 200, and stopped with SIGTERM. A server that exits or is not
ready in time fails the test with its log.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.server import Server, clean_env, free_port
from tests.support.server import spawn_server as _spawn
from tests.support.server import start_server as _start
from tests.support.server import wait_ready as _wait_ready

LiveServer = Server
__all__ = ["LiveServer", "clean_env", "free_port", "live_server", "pulling_server", "start_server", "stop_server",
           "wait_ready"]


def start_server(config_path: Path, log: Path, *extra: str, ready_timeout: float = 300) -> LiveServer:
    try:
        return _start(config_path, log, *extra, timeout=ready_timeout)
    except RuntimeError as exc:
        pytest.fail(str(exc))


def stop_server(server: LiveServer, timeout: float = 60) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
    return server.stop(timeout)


@contextmanager
def live_server(config_path: Path, log: Path, *extra: str, ready_timeout: float = 300) -> Iterator[LiveServer]:
    server = start_server(config_path, log, *extra, ready_timeout=ready_timeout)
    try:
        yield server
    finally:
        stop_server(server)


@contextmanager
def pulling_server(log: Path, env: dict[str, str], *flags: str) -> Iterator[LiveServer]:
    """``ovembed serve FLAGS`` (``--source_model`` pull mode) started without waiting for ready:
    the test watches it pull (:func:`wait_ready` returns the statuses it answered on the way)."""
    server = _spawn(log, *flags, env=env)
    try:
        yield server
    finally:
        stop_server(server)


def wait_ready(server: LiveServer, timeout: float = 900) -> list[int]:
    try:
        return _wait_ready(server, timeout)
    except RuntimeError as exc:
        pytest.fail(str(exc))
