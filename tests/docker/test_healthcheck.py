"""docker/healthcheck.py: which URL it probes, and its exit code against a stub server."""

from __future__ import annotations

import http.server
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "healthcheck.py"


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ovembed_docker_healthcheck", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SERVE = ["/opt/venv/bin/python", "/opt/venv/bin/ovembed", "serve"]


@pytest.mark.parametrize(
    ("argv", "env", "url"),
    [
        ([*SERVE, "--config_path", "/models/config.json", "--rest_bind_address", "0.0.0.0", "--rest_port", "8000"],
         {}, "http://127.0.0.1:8000/v2/health/ready"),
        ([*SERVE, "--rest_port", "8000", "--rest-port=9000"], {}, "http://127.0.0.1:9000/v2/health/ready"),
        ([*SERVE, "--rest_bind_address", "10.1.2.3"], {}, "http://10.1.2.3:8000/v2/health/ready"),
        ([*SERVE, "--rest_bind_address", "::"], {}, "http://127.0.0.1:8000/v2/health/ready"),
        ([*SERVE, "--rest_bind_address", "::1", "--rest_port", "7000"], {}, "http://[::1]:7000/v2/health/ready"),
        ([*SERVE], {"OVEMBED_REST_PORT": "8123"}, "http://127.0.0.1:8123/v2/health/ready"),
        ([*SERVE, "--rest_port", "8124"], {"OVEMBED_REST_PORT": "8123"}, "http://127.0.0.1:8124/v2/health/ready"),
        ([], {}, "http://127.0.0.1:8000/v2/health/ready"),
        ([*SERVE, "--rest_port", "1"], {"OVEMBED_HEALTHCHECK_URL": "http://127.0.0.1:5/x"}, "http://127.0.0.1:5/x"),
    ],
)
def test_ready_url(healthcheck: ModuleType, argv: list[str], env: dict[str, str], url: str) -> None:
    assert healthcheck.ready_url(argv, env) == url


def test_server_argv_reads_proc(healthcheck: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "cmdline").write_bytes(b"tini\0--\0/usr/local/bin/ovembed-entrypoint\0")
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "cmdline").write_bytes(b"python\0/opt/venv/bin/ovembed\0serve\0--rest_port\0009000\0")
    (tmp_path / "self").mkdir()
    assert healthcheck._server_argv(tmp_path) == ["python", "/opt/venv/bin/ovembed", "serve", "--rest_port", "9000"]
    (tmp_path / "1" / "cmdline").write_bytes(b"python\0ovembed\0serve\0--rest_port\0008001\0")
    assert healthcheck._server_argv(tmp_path)[-1] == "8001"


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = type(self).status if self.path == "/v2/health/ready" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def stub_server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/health/ready", handler
    finally:
        server.shutdown()
        server.server_close()


def _check(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OVEMBED_HEALTHCHECK_URL": url}
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def test_exit_codes(stub_server: tuple[str, type[_Handler]]) -> None:
    url, handler = stub_server
    assert _check(url).returncode == 0
    handler.status = 503  # loading: not ready yet
    failed = _check(url)
    assert failed.returncode == 1
    assert "503" in failed.stderr
    closed = _check("http://127.0.0.1:9/v2/health/ready")  # discard port: nothing listens
    assert closed.returncode == 1
