"""Run ``ovembed export`` and ``ovembed serve`` as child processes, on loopback only.

The one place that starts a real server: the benchmarks use it, and so do the end-to-end tests
(through ``tests/live_server.py``, which turns its errors into test failures).
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
from types import TracebackType

MODEL_NAME = "minilm"
_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def export_minilm(source: Path, repository: Path, log: Path,
                  weights: tuple[str, ...] = ("--weight-format", "fp32")) -> Path:
    """Export (or reuse) MiniLM (fp32 unless ``weights`` gives other export flags) with truncation
    on; returns the repository's config.json.

    Truncation is on so that ~500-token passages are cut to the model's 256 like
    sentence-transformers does, instead of being rejected.
    """
    config = repository / "config.json"
    if config.exists() and (repository / MODEL_NAME).is_dir():
        return config
    command = [sys.executable, "-m", "ovembed", "export", "--source_model", str(source),
               "--model_name", MODEL_NAME, *weights, "--truncate",
               "--model_repository_path", str(repository)]
    with log.open("ab") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not config.exists():
        raise RuntimeError(f"export failed (exit {done.returncode}); see {log}")
    return config


def serve_flags() -> str:
    done = subprocess.run([sys.executable, "-m", "ovembed", "serve", "--help"],
                          capture_output=True, text=True, check=False)
    return done.stdout


@dataclass
class Server:
    """A running ``ovembed serve``; ``ready_s`` is process start to /v2/health/ready == 200."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started: float = 0.0
    ready_s: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def peak_rss_bytes(self) -> int:
        """VmHWM (peak resident set) of the server and any child processes it started."""
        return sum(_vm_hwm(pid) for pid in [self.process.pid, *_children(self.process.pid)])

    def cpu_seconds(self) -> float:
        """User + system CPU time the server (and its children) have used so far."""
        return sum(process_cpu_seconds(pid)
                   for pid in [self.process.pid, *_children(self.process.pid)])

    def rss_bytes(self) -> int:
        return _status_kib(self.process.pid, "VmRSS") * 1024

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (a graceful drain), then SIGKILL after ``timeout``; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without ovembed's settings (OVEMBED_*, API_KEY), offline for the Hub, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "API_KEY" and not k.startswith("OVEMBED_")}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.update(extra)
    return env


def start_server(config: Path, log: Path, *flags: str, cache_dir: Path | None = None,
                 env: dict[str, str] | None = None, timeout: float = 300.0,
                 root: Path | None = None) -> Server:
    """Start ``ovembed serve --config_path config FLAGS`` on a free loopback port; wait until ready.

    The environment is :func:`clean_env` unless ``env`` is given, so only ``flags`` apply. Raises
    RuntimeError with the server's log when it exits or is not ready within ``timeout`` seconds.
    ``root``: the source tree whose ``ovembed`` runs (default: this one; paired A/B runs of two
    trees).
    """
    if cache_dir is not None:
        flags = (*flags, "--cache_dir", str(cache_dir))
    server = spawn_server(log, "--config_path", str(config), *flags, env=env, root=root)
    wait_ready(server, timeout)
    return server


def spawn_server(log: Path, *flags: str, env: dict[str, str] | None = None, root: Path | None = None) -> Server:
    """Start ``ovembed serve FLAGS`` on a free loopback port and return at once (``--source_model``
    pull mode is not ready for minutes; :func:`wait_ready` waits). Output is appended to ``log``."""
    port = free_port()
    command = [sys.executable, "-m", "ovembed", "serve", "--rest_port", str(port), "--rest_bind_address",
               "127.0.0.1", *flags]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   env=clean_env() if env is None else env, cwd=root or _ROOT)
    return Server(process, port, log, started=time.perf_counter())


def wait_ready(server: Server, timeout: float = 300.0) -> list[int]:
    """Poll ``/v2/health/ready`` until it answers 200; returns every status it answered on the way
    (a pulling server answers 503 first). Sets ``server.ready_s``. Raises RuntimeError with the log
    when the server exits, or (after stopping it) when it is not ready within ``timeout`` seconds."""
    seen: list[int] = []
    deadline = server.started + timeout
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"ovembed serve exited with {server.process.returncode}:\n{server.log_text()}")
        status = _ready_status(server.port)
        if status is not None and (not seen or seen[-1] != status):
            seen.append(status)
        if status == 200:
            server.ready_s = time.perf_counter() - server.started
            return seen
        if time.perf_counter() > deadline:
            server.stop()
            raise RuntimeError(f"ovembed serve not ready after {timeout:g} s:\n{server.log_text()}")
        time.sleep(0.01 if status is None else 0.1)


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


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat (0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all processes on the machine have used since boot (from /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    busy = sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7) if i < len(fields))
    return busy / os.sysconf("SC_CLK_TCK")


def _vm_hwm(pid: int) -> int:
    return _status_kib(pid, "VmHWM") * 1024


def _children(pid: int) -> list[int]:
    try:
        import psutil
    except ImportError:
        return []
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []
