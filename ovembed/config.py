"""Typed configuration, defined once.

Each command's options are a frozen dataclass. Field metadata carries the help text and
choices; :mod:`ovembed.cli` derives the flags (``--flag_name`` and ``--flag-name``) and the
``OVEMBED_FLAG_NAME`` environment variables from these fields, so nothing is listed twice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class WeightFormat(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    INT4 = "int4"

    def __str__(self) -> str:
        return self.value


class Pooling(str, enum.Enum):
    CLS = "CLS"
    MEAN = "MEAN"
    LAST = "LAST"

    def __str__(self) -> str:
        return self.value


def option(default: Any, help: str, *, required: bool = False, metavar: str | None = None,
           positional: bool = False, flags: tuple[str, ...] = (), env: str | None = None) -> Any:
    """A dataclass field that is also a command-line flag and an environment variable.

    ``flags`` adds extra spellings (e.g. OVMS's ``--port``); ``env`` overrides the variable name.
    """
    meta = {"help": help, "required": required, "metavar": metavar, "positional": positional,
            "flags": flags, "env": env}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ExportConfig:
    """`ovembed export`: flag-compatible with OVMS's export_model.py embeddings_ov."""

    source_model: str = option("", "Hugging Face model id (from the local cache) or a local folder", required=True)
    model_name: str | None = option(
        None, "Name the model is served under (default: source_model); '/' makes nested folders")
    model_repository_path: Path = option(Path("models"), "Model repository folder (created if missing)")
    config_file_path: Path | None = option(None, "config.json to upsert (default: <model_repository_path>/config.json)")
    weight_format: WeightFormat = option(WeightFormat.INT8, "Weight-only compression through NNCF")
    pooling: Pooling | None = option(None, "Pooling (default: from the model's 1_Pooling/config.json, else CLS)")
    skip_normalize: bool = option(False, "Do not L2-normalise the embeddings")
    truncate: bool = option(False, "Truncate inputs longer than the model's maximum instead of rejecting them")
    num_streams: int = option(1, "Parallel execution streams (NUM_STREAMS in plugin_config)")
    target_device: str = option("CPU", "Device to serve on: CPU, GPU, NPU, AUTO, HETERO:...")
    overwrite_models: bool = option(False, "Re-export even if the model folder already exists")
    extra_quantization_params: str | None = option(
        None, "Extra optimum-cli style options, e.g. '--group-size 64 --ratio 0.8 --sym'")
    trust_remote_code: bool = option(False, "Allow running code shipped with the model (explicit opt-in)")
    ov_cache_dir: Path | None = option(None, "Compilation cache folder written into plugin_config (CACHE_DIR)")
    min_cosine: float | None = option(
        None, "Verification threshold (default per weight format: fp32 0.9999, fp16 0.999, int8 0.995, int4 0.98)")
    skip_verify: bool = option(False, "Skip the comparison with the PyTorch reference")
    prompt: list[str] = option(
        [], "Add a prompt as name=text (repeatable), beside those in config_sentence_transformers.json",
        flags=("--prompt",))
    default_prompt_name: str | None = option(
        None, "Prompt applied when a request names none (default: the model's default_prompt_name)")

    @property
    def served_name(self) -> str:
        return self.model_name or self.source_model

    @property
    def config_path(self) -> Path:
        return self.config_file_path or self.model_repository_path / "config.json"


@dataclass(frozen=True)
class CompareConfig:
    """`ovembed compare`: exported IR vs the PyTorch reference on user texts."""

    model_path: Path = option(Path(), "Exported model folder (with graph.pbtxt)", required=True)
    source_model: str | None = option(None, "Reference model (default: the source recorded at export)")
    input: list[str] = option([], "Text to embed (repeatable); default: built-in sentences", flags=("--input",))
    trust_remote_code: bool = option(False, "Allow running code shipped with the reference model")


@dataclass(frozen=True)
class ServeConfig:
    """`ovembed serve`: OVMS-compatible flags plus batching and limits."""

    config_path: Path | None = option(None, "Model repository config.json (serves every model in it)")
    model_path: Path | None = option(None, "Single-model mode: the model folder")
    model_name: str | None = option(None, "Single-model mode: the served name (default: folder name)")
    rest_port: int = option(8000, "HTTP port")
    rest_bind_address: str = option("127.0.0.1", "HTTP bind address (0.0.0.0 exposes it to the network)")
    port: int = option(0, "KServe gRPC port (0: off)")
    grpc_bind_address: str = option("127.0.0.1", "gRPC bind address")
    log_level: str = option("INFO", "DEBUG, INFO, WARNING or ERROR")
    log_format: str = option("text", "text or json")
    api_key_file: Path | None = option(None, "File whose first line is the API key (env API_KEY also works)")
    target_device: str | None = option(None, "Override every model's target_device")
    max_inputs: int = option(2048, "Maximum inputs in one embeddings request")
    max_body_bytes: int = option(8 * 1024 * 1024, "Maximum request body size in bytes")
    # 2048: throughput is flat from 2048 up on MiniLM, while activation memory grows with the
    # budget (peak RSS serving MiniLM fp32: 16384 -> 412 MB, 2048 -> 266 MB).
    max_batch_tokens: int = option(2048, "Token budget of one inference batch (padded length x batch size)")
    max_batch_size: int = option(64, "Maximum inputs in one inference batch")
    max_wait_ms: float = option(2.0, "How long a non-idle batcher waits to fill a batch")
    max_queue: int = option(4096, "Queued inputs per model before requests get 429")
    cache_dir: Path | None = option(None, "OpenVINO compilation cache folder (CACHE_DIR)")
    file_system_poll_wait_seconds: float = option(
        1.0, "Seconds between checks of config.json and the models' graph.pbtxt/files for live reload "
        "(0: only on POST /v1/config/reload)")
    metrics_enable: bool = option(True, "Expose Prometheus metrics at /metrics (no API key needed)",
                                  flags=("--no-metrics",))
    allowed_origins: str = option("", "CORS allowed origins, comma separated (default: CORS off)")
    allowed_methods: str = option("GET,POST", "CORS allowed methods")
    allowed_headers: str = option("*", "CORS allowed headers")
    default_prompt_name: str | None = option(
        None, "Prompt applied when a request names none, for every model that has a prompt of that name")
    cache_bytes: int = option(0, "Bytes of memory for an LRU cache of embedded inputs, shared by all models (0: off)")
    graceful_timeout: float = option(
        30.0, "Seconds to finish in-flight requests (HTTP and gRPC) on SIGTERM/SIGINT, and for a removed "
        "or replaced model to finish its own")


@dataclass(frozen=True)
class BenchmarkConfig:
    """`ovembed benchmark`: async load generator for OpenAI / Ollama embeddings servers."""

    api_url: str = option("http://127.0.0.1:8000/v3/embeddings",
                          "Embeddings endpoint (OpenAI /v3/embeddings, /v1/embeddings or Ollama /api/embed)")
    model: str = option("", "Model name sent in requests", required=True)
    dataset: str = option("synthetic", "'synthetic' or a file of texts (one per line, or a JSON list)")
    synthetic_length: int = option(40, "Approximate words per synthetic document")
    batch_size: int = option(1, "Inputs per request")
    concurrency: int = option(1, "Requests in flight")
    request_rate: float = option(float("inf"), "Requests per second (Poisson); inf sends as fast as possible")
    limit: int = option(1000, "Documents to send")
    encoding_format: str = option("float", "float or base64")
    api_key: str | None = option(None, "Bearer token", env="API_KEY")
    json: bool = option(False, "Print the results as JSON")
    seed: int = option(0, "Random seed for synthetic data and arrival times")
    warmup: int = option(1, "Unmeasured requests sent first; they also check the URL, model and key")
    timeout: float = option(600.0, "Seconds to wait for one response before counting it as failed")
