"""``ovembed serve``: check the config, set up logging, build the app, run uvicorn.

``run(cfg)`` returns the process exit code; :mod:`ovembed.cli` only builds the config and
calls it. Logs go to stderr as text or JSON lines; every line logged while a request is being
handled carries its id (a ContextVar read by a logging filter, so the engine's lines do too).

SIGTERM or SIGINT stops accepting connections, lets in-flight requests (HTTP and gRPC) finish
within ``--graceful_timeout`` seconds, unloads the models and exits 0. (Stock uvicorn re-raises
the signal after its graceful shutdown, so the process would end by it, status 143/130; a
clean drain is a success here.) A second SIGINT skips the wait.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import re
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import orjson
import uvicorn
from starlette.applications import Starlette
from uvicorn.server import HANDLED_SIGNALS

from ovembed.config import ServeConfig
from ovembed.errors import ConfigError, OvembedError
from ovembed.exitcodes import ExitCode
from ovembed.serving.context import REQUEST_ID
from ovembed.serving.http.app import begin_shutdown, build_registry, create_app
from ovembed.serving.http.protocol import with_header_timeout
from ovembed.serving.models.startup import folder_hint

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

logger = logging.getLogger("ovembed.serving")


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's, else None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


# C0/C1 control characters and Unicode line separators: a client-chosen model name or path
# with a newline must not forge a log line.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    r"""``text`` with control characters shown as escapes (``\n``, ``\x1b``...)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)  # tracebacks, appended later, keep lines
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{text} [request_id={rid}]" if rid else text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str, fmt: str) -> None:
    """One stderr handler on the root logger; uvicorn's loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    level = level if level in LOG_LEVELS else "INFO"
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True


class Server(uvicorn.Server):
    """uvicorn's server, plus: the signal that stops it is not re-raised (exit 0 after a clean
    drain), and the app hears about the shutdown as soon as HTTP stops accepting
    (:func:`ovembed.serving.http.app.begin_shutdown`), so gRPC drains alongside."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self._app = app
        self.stop_signal: int | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, without re-raising the captured signal at the end."""
        if threading.current_thread() is not threading.main_thread():  # signals: main thread only
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = sig
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        cause = signal.Signals(self.stop_signal).name if self.stop_signal is not None else "shutdown"
        logger.info("%s: no new connections; finishing in-flight requests (up to %s s)", cause,
                    self.config.timeout_graceful_shutdown)
        begin_shutdown(self._app)
        await super().shutdown(sockets)


def check_config(cfg: ServeConfig) -> None:
    """Raise ``ConfigError`` unless the flags say what to serve (values are checked by ServeConfig)."""
    if (cfg.config_path is None) == (cfg.model_path is None):
        raise ConfigError(
            "give exactly one of --config_path <repository>/config.json (every model in a "
            "repository) or --model_path <model folder> (one model)"
        )
    if cfg.model_name is not None and cfg.model_path is None and cfg.source_model is None:
        raise ConfigError("--model_name needs --model_path (single-model mode) or --source_model (pull mode)")



def _check_model_path(cfg: ServeConfig) -> None:
    """``--model_path`` that is no exported model (missing, a Hugging Face folder) is one line before start."""
    if cfg.model_path is not None and not cfg.allow_empty:
        hint = folder_hint(Path(cfg.model_path).expanduser())
        if hint is not None:
            raise ConfigError(f"--model_path: {hint}")


class PortUnavailable(OvembedError):
    """The REST or gRPC port cannot be bound (checked before any model loads)."""


def listen(host: str, port: int, flag: str) -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening), or ``PortUnavailable`` naming ``flag``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP; without
    # it a response's second write waits for the client's delayed ACK (+40 ms per keep-alive request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortUnavailable(f"port {port} is in use ({flag}): stop the process that holds it "
                                  f"or choose another port") from None
        raise PortUnavailable(f"cannot listen on {host}:{port} ({flag}): {exc.strerror}") from None
    return sock


def _bind_ports(cfg: ServeConfig) -> socket.socket:
    """The REST socket, bound before models load; the gRPC port is probed the same way and released
    (grpcio binds its own), so a port in use is one line at start, not an error after loading."""
    rest = listen(cfg.rest_bind_address, cfg.rest_port, "--rest_port")
    if cfg.port:
        try:
            listen(cfg.grpc_bind_address, cfg.port, "--port").close()
        except PortUnavailable:
            rest.close()
            raise
    return rest


def run(cfg: ServeConfig) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    configure_logging(cfg.log_level.value, cfg.log_format.value)
    try:
        from ovembed.serving.models.pull import pull_config

        cfg = pull_config(cfg)  # --source_model: serve its repository's config.json
        check_config(cfg)
        _check_model_path(cfg)
        rest_socket = _bind_ports(cfg)
    except PortUnavailable as exc:
        logger.error("ovembed serve: %s", exc)
        return ExitCode.FAILURE
    except OvembedError as exc:
        logger.error("ovembed serve: %s", exc)
        return ExitCode.USAGE
    try:
        registry = build_registry(cfg)  # reads the repository; loading starts in the lifespan
        app = create_app(cfg, registry)
    except OvembedError as exc:
        rest_socket.close()
        logger.error("ovembed serve: %s", exc)
        return ExitCode.USAGE
    server = Server(uvicorn.Config(
        app,
        host=cfg.rest_bind_address,
        port=cfg.rest_port,
        lifespan="on",
        log_config=None,  # keep ours
        access_log=False,  # RequestContextMiddleware logs requests with their id
        server_header=False,
        timeout_graceful_shutdown=math.ceil(cfg.graceful_timeout),
        http=with_header_timeout(cfg.header_timeout),  # slow-header clients are closed (protocol.py)
        limit_concurrency=cfg.max_connections,
    ), app)
    logger.info("ovembed serve: starting on http://%s:%d (API key %s)", cfg.rest_bind_address,
                cfg.rest_port, "required" if app.state.auth_enabled else "off")
    try:
        app.state.stop_server = lambda: setattr(server, "should_exit", True)
        server.run(sockets=[rest_socket])
    except SystemExit as exc:  # uvicorn exits this way when it cannot bind or start
        return ExitCode.OK if exc.code in (None, 0) else ExitCode.FAILURE
    if app.state.exit_code is not None:
        return int(app.state.exit_code)
    return ExitCode.OK if server.started else ExitCode.FAILURE
