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
