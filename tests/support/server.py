"""Start a real ``python -m ovembed serve`` on a free loopback port, and wait for it.

The tests' own server spawner (the benchmarks keep theirs in ``benchmarks/harness.py``): a clean
environment (no OVEMBED_* variables, no API_KEY, the Hub offline) so only the flags given apply,
output appended to a log file, ``/v2/health/ready`` polled until it answers 200.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without ovembed's settings (OVEMBED_*, API_KEY), offline for the Hub, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "API_KEY" and not k.startswith("OVEMBED_")}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.update(extra)
    return env


@dataclass
class Server:
    """A running ``ovembed serve``."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def rss_bytes(self) -> int:
        """VmRSS of the server process (0 when it is gone)."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a graceful drain), then SIGKILL after ``timeout``; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def spawn_server(log: Path, *flags: str, env: dict[str, str] | None = None) -> Server:
    """Start ``ovembed serve FLAGS`` on a free loopback port and return at once."""
    port = free_port()
    command = [sys.executable, "-m", "ovembed", "serve", "--rest_port", str(port), "--rest_bind_address",
               "127.0.0.1", *flags]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   env=clean_env() if env is None else env, cwd=ROOT)
    return Server(process, port, log, started=time.perf_counter())


def wait_ready(server: Server, timeout: float = 300.0) -> list[int]:
    """Poll ``/v2/health/ready`` until it answers 200; returns every status it answered on the way.
    Raises RuntimeError with the log when the server exits, or (after stopping it) when it is not
    ready within ``timeout`` seconds."""
    seen: list[int] = []
    deadline = server.started + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"ovembed serve exited with {server.process.returncode}:\n{server.log_text()}")
        status = _ready_status(server.port)
        if status is not None and (not seen or seen[-1] != status):
            seen.append(status)
        if status == 200:
            return seen
        if time.perf_counter() > deadline:
            server.stop()
            raise RuntimeError(f"ovembed serve not ready after {timeout:g} s:\n{server.log_text()}")
        time.sleep(0.01 if status is None else 0.1)


def start_server(config: Path, log: Path, *flags: str, timeout: float = 300.0) -> Server:
    """``ovembed serve --config_path config FLAGS`` on a free loopback port, ready."""
    server = spawn_server(log, "--config_path", str(config), *flags)
    wait_ready(server, timeout)
    return server


def _ready_status(port: int) -> int | None:
    """The status of GET /v2/health/ready, or None while nothing listens on ``port``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5.0)
    try:
        connection.request("GET", "/v2/health/ready")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()
