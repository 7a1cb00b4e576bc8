"""`ovembed serve`: OVMS-compatible flags plus batching, limits and pull mode."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path

from ovembed.config.base import Executors, LogFormat, LogLevel, _Checked, _require, option
from ovembed.config.export import ExportConfig
from ovembed.pull_fields import PULL_FIELDS

INFERENCE_PRECISIONS = ("auto", "f32", "bf16", "f16")


def _with_pull_fields(cls: type) -> type:
    """One field per PULL_FIELDS entry: ExportConfig's type, default and env variable, serve's help."""
    hints = typing.get_type_hints(ExportConfig)
    defaults = {f.name: f.default for f in dataclasses.fields(ExportConfig)}
    for name, pulled in PULL_FIELDS.items():
        cls.__annotations__[name] = hints[name]
        setattr(cls, name, option(defaults[name], pulled.help))
    return cls


@dataclass(frozen=True)
@_with_pull_fields
class ServeConfig(_Checked):
    """`ovembed serve`: OVMS-compatible flags plus batching and limits."""

    config_path: Path | None = option(None, "Model repository config.json (serves every model in it)")
    model_path: Path | None = option(None, "Single-model mode: the model folder")
    model_name: str | None = option(None, "Single-model mode: the served name (default: folder name)")
    allow_empty: bool = option(False, "Keep serving when no model could be loaded at start (a repository "
                                      "that will be filled later); by default serve exits 1")
    rest_port: int = option(8000, "HTTP port")
    rest_bind_address: str = option("127.0.0.1", "HTTP bind address (0.0.0.0 exposes it to the network)")
    port: int = option(0, "KServe gRPC port (0: off)")
    grpc_bind_address: str = option("127.0.0.1", "gRPC bind address")
    log_level: LogLevel = option(LogLevel.INFO, "Log level")
    log_format: LogFormat = option(LogFormat.TEXT, "Log line format")
    api_key_file: Path | None = option(None, "File whose first line is the API key (env API_KEY also works)")
    target_device: str | None = option(None, "Override every model's target_device")
    max_inputs: int = option(2048, "Maximum inputs in one embeddings request")
    max_body_bytes: int = option(8 * 1024 * 1024, "Maximum request body size in bytes")
    max_request_tokens: int = option(1 << 20, "Tokens in one embeddings or tokenize request (after tokenizing, "
                                     "padding included) before it gets 413")
    max_chunks_per_input: int = option(1024, "Chunks one input of a chunking request may need before it gets 413 "
                                       "(a request's chunking.max_chunks may lower it)")
    inference_precision: str = option(
        "auto", "Precision the device computes in: f32 (batch-invariant vectors), bf16, f16, or auto (f32 for "
        "fp32/fp16 models on CPU, else the device's default); overrides INFERENCE_PRECISION_HINT in graph.pbtxt")
    max_connections: int = option(1000, "Concurrent HTTP connections and requests before new ones get 503 "
                                  "(uvicorn's limit_concurrency)")
    header_timeout: float = option(10.0, "Seconds a client has to send the request line and headers, from "
                                   "connecting or from its previous response (0: no limit)")
    # 1024: throughput is flat from 1024 up on MiniLM, while activation memory grows with the
    # budget (peak RSS serving MiniLM fp32 under bulk load: 16384 -> 412 MB, 2048 -> 313 MB,
    # 1024 -> 291 MB; each stream holds its own activations).
    max_batch_tokens: int = option(1024, "Token budget of one inference batch (padded length x batch size)")
    max_batch_size: int = option(64, "Maximum inputs in one inference batch")
    max_wait_ms: float = option(2.0, "How long a non-idle batcher waits to fill a batch")
    executors: Executors = option(
        Executors.AUTO, "CPU models whose graph.pbtxt keeps the default streams: one compiled model, or two "
        "(small batches on one stream using every core, large ones on one stream per core: faster bulk, "
        "a second copy of the repacked weights in memory); auto: two for int8/int4 weights, one for fp32/fp16")
    max_queue: int = option(4096, "Queued inputs per model before requests get 429")
    max_queue_wait_seconds: float = option(
        30.0, "Expected queue wait (its tokens ahead, in the fair order the queue serves requests, over the "
        "measured tokens/s) past which a request gets 429 at once with Retry-After (0: off)")
    request_timeout: float = option(
        0.0, "Seconds a request may take before it gets 504 and its work not yet started is dropped; a "
        "request's x-request-timeout header (or gRPC deadline) may set its own (0: no limit)")
    lone_shapes_max_mb: int = option(
        80, "Memory per model for static-shape copies (16, 8 and 32 tokens, compiled in that order while they "
        "fit; each holds its own weights) that lone short queries run on, kept when timing at load finds them "
        "faster: a dynamic-shape graph re-prepares itself whenever the input shape changes (0: off)")
    cache_dir: Path | None = option(None, "OpenVINO compilation cache folder (CACHE_DIR)")
    file_system_poll_wait_seconds: float = option(
        1.0, "Seconds between checks of config.json and the models' graph.pbtxt/files for live reload "
        "(0: only on POST /v1/config/reload)")
    metrics_enable: bool = option(True, "Expose Prometheus metrics at /metrics (no API key needed)",
                                  flags=("--no-metrics",))
    allowed_origins: str = option(
        "", "Browser origins allowed to call the API (CORS), comma separated; any other Origin gets 403 "
        "(default: none, CORS off)")
    allowed_hosts: str = option(
        "", "Host header values the server answers to, comma separated, '*' for any (default: bound to "
        "loopback, the localhost names and the bind address, against DNS rebinding; else any)")
    allowed_methods: str = option("GET,POST", "CORS allowed methods")
    allowed_headers: str = option("*", "CORS allowed headers")
    default_prompt_name: str | None = option(
        None, "Prompt applied when a request names none, for every model that has a prompt of that name")
    allow_any_dimensions: bool = option(False, "Let 'dimensions' cut vectors of models not trained for it (Matryoshka)")
    cache_bytes: int = option(0, "Bytes of memory for an LRU cache of embedded inputs, shared by all models (0: off)")
    otlp_endpoint: str | None = option(
        None, "OpenTelemetry collector to send traces to, e.g. http://otel-collector:4317 (OTLP over gRPC, or "
        "http/protobuf with OTEL_EXPORTER_OTLP_PROTOCOL); the standard OTEL_EXPORTER_OTLP_ENDPOINT and "
        "OTEL_TRACES_EXPORTER variables turn tracing on too (default: off; needs pip install 'ovembed[otel]')")
    graceful_timeout: float = option(
        30.0, "Seconds to finish in-flight requests (HTTP and gRPC) on SIGTERM/SIGINT, and for a removed "
        "or replaced model to finish its own")
    # Pull mode (OVMS --pull --source_model, TEI --model-id): export into the repository if missing, then serve.
    source_model: str | None = option(
        None, "Hub id or folder to export (if not in the repository yet) and serve; ready once exported and warm")
    # ... and one field per PULL_FIELDS entry (added by _with_pull_fields).

    def _check(self) -> None:
        _require(0 < self.rest_port < 65536, f"--rest_port must be between 1 and 65535, got {self.rest_port}")
        _require(0 <= self.port < 65536, f"--port (gRPC) must be between 1 and 65535, or 0 for off, got {self.port}")
        _require(self.port != self.rest_port, f"--port (gRPC) and --rest_port must differ, both are {self.port}")
        for name in ("max_inputs", "max_body_bytes", "max_batch_tokens", "max_batch_size", "max_queue",
                     "max_connections", "max_request_tokens", "max_chunks_per_input"):
            _require(getattr(self, name) >= 1, f"--{name} must be positive, got {getattr(self, name)}")
        _require(self.inference_precision in INFERENCE_PRECISIONS, "--inference_precision must be one of "
                 f"{', '.join(INFERENCE_PRECISIONS)}, got {self.inference_precision!r}")
        ExportConfig(**{name: getattr(self, name) for name in PULL_FIELDS})  # checks them as export does
        _require(not self.otlp_endpoint or self.otlp_endpoint.startswith(("http://", "https://")),
                 f"--otlp_endpoint must be a URL like http://otel-collector:4317, got {self.otlp_endpoint!r}")
        _require(self.lone_shapes_max_mb >= 0, "--lone_shapes_max_mb must be 0 (off) or more")
        for name in ("max_wait_ms", "graceful_timeout", "file_system_poll_wait_seconds", "header_timeout",
                     "max_queue_wait_seconds", "request_timeout"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, f"--{name} cannot be negative, got {value}")
