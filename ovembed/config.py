"""Typed configuration, defined once.

Each command's options are a frozen dataclass. Field metadata carries the help text and
choices; :mod:`ovembed.cli` derives the flags (``--flag_name`` and ``--flag-name``) and the
``OVEMBED_FLAG_NAME`` environment variables from these fields, so nothing is listed twice.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovembed.errors import ConfigError
from ovembed.pull_fields import PULL_FIELDS


class WeightFormat(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    INT4 = "int4"

    def __str__(self) -> str:
        return self.value


class Quantization(str, enum.Enum):
    WEIGHT_ONLY = "weight_only"  # NNCF compress_weights: int8/int4 weights, float activations
    STATIC = "static"  # NNCF quantize: int8 weights and activations, calibrated on texts

    def __str__(self) -> str:
        return self.value


class Executors(str, enum.Enum):
    """`ovembed serve --executors`: how many compiled copies of a model serve its batches (CPU)."""

    AUTO = "auto"  # two for int8/int4 weights, one for fp32/fp16 (memory: see the README)
    ONE = "one"  # one executor: the least memory
    TWO = "two"  # a second, multi-stream executor for large batches, whatever the weights

    def __str__(self) -> str:
        return self.value


class Task(str, enum.Enum):
    """What a model does; OVMS's export subcommand names (``embeddings_ov``, ``rerank_ov``) work too."""

    EMBEDDINGS = "embeddings"
    RERANK = "rerank"
    SPARSE = "sparse"  # SPLADE-style masked LM (ovembed only: OVMS has no sparse task)
    TOKEN_EMBED = "token_embed"  # late interaction (ColBERT-style): one vector per token (ovembed only)

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> Task | None:
        if isinstance(value, str):
            name = value.lower().removesuffix("_ov")
            return next((m for m in cls if m.value == name), None)
        return None


class Pooling(str, enum.Enum):
    CLS = "CLS"
    MEAN = "MEAN"
    LAST = "LAST"

    def __str__(self) -> str:
        return self.value


class LogLevel(str, enum.Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"

    def __str__(self) -> str:
        return self.value


class LogFormat(str, enum.Enum):
    TEXT = "text"
    JSON = "json"

    def __str__(self) -> str:
        return self.value


class EncodingFormat(str, enum.Enum):
    FLOAT = "float"
    BASE64 = "base64"

    def __str__(self) -> str:
        return self.value


class Scenario(str, enum.Enum):
    """`ovembed benchmark --scenario`: one kind of client, or bulk and interactive clients at once."""

    UNIFORM = "uniform"
    MIXED = "mixed"

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


@functools.cache
def _choice_fields(cls: type) -> tuple[tuple[str, type[enum.Enum]], ...]:
    """The fields of a config class whose type is an enum (``X`` or ``X | None``)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kinds = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
        if len(kinds) == 1 and isinstance(kinds[0], type) and issubclass(kinds[0], enum.Enum):
            out.append((f.name, kinds[0]))
    return tuple(out)


class _Checked:
    """Validation shared by the config classes, run on construction (CLI, env and library alike).

    Enum fields also accept their values as strings, case-insensitively (``"int8"``, ``"debug"``);
    anything else raises :class:`ConfigError` naming the flag. Subclasses add ``_check``.
    """

    def __post_init__(self) -> None:
        for name, kind in _choice_fields(type(self)):
            value = getattr(self, name)
            if value is None or isinstance(value, kind):
                continue
            by_value = {str(m.value).lower(): m for m in kind}
            found = by_value.get(str(value).lower()) if isinstance(value, str) else None
            if found is None and isinstance(value, str):
                try:  # aliases an enum accepts (Task: OVMS's "rerank_ov")
                    found = kind(value)
                except ValueError:
                    found = None
            if found is None:
                raise ConfigError(f"--{name} must be one of {', '.join(str(m.value) for m in kind)}, "
                                  f"got {value!r}")
            object.__setattr__(self, name, found)
        self._check()

    def _check(self) -> None:
        pass


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


@dataclass(frozen=True)
class ExportConfig(_Checked):
    """`ovembed export`: flag-compatible with OVMS's export_model.py embeddings_ov and rerank_ov."""

    task: Task = option(Task.EMBEDDINGS, "What the model does: embeddings (embeddings_ov), rerank (rerank_ov, "
                        "a cross-encoder with one logit) or sparse (a SPLADE-style masked LM; ovembed only)")
    source_model: str = option("", "Hugging Face Hub id (ORG/NAME, downloaded or from the cache) or a local folder",
                               required=True)
    revision: str | None = option(None, "Hub branch, tag or commit (default: main); recorded with its commit")
    hf_token: str | None = option(None, "Hub token for gated/private models (default: HF_TOKEN or the token file)")
    quiet: bool = option(False, "No download progress bars (also off when stderr is not a terminal)")
    model_name: str | None = option(
        None, "Name the model is served under (default: source_model); '/' makes nested folders")
    model_repository_path: Path = option(Path("models"), "Model repository folder (created if missing)")
    config_file_path: Path | None = option(None, "config.json to upsert (default: <model_repository_path>/config.json)")
    weight_format: WeightFormat = option(WeightFormat.INT8, "Weight-only compression through NNCF")
    quantization: Quantization = option(
        Quantization.WEIGHT_ONLY, "int8 only: weight_only compresses weights; static also quantizes activations "
        "(calibrated on texts; fast on VNNI/AMX CPUs, slower than fp32 elsewhere: see `ovembed devices`)")
    calibration_file: Path | None = option(
        None, "--quantization static: calibration texts, one per line (default: the built-in corpus)")
    num_samples: int = option(300, "--quantization static: calibration texts used")
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
    reference_model: str | None = option(
        None, "OpenVINO IR sources: PyTorch model (Hub id or folder) to verify the IR against (default: the "
        "source's own *.safetensors/pytorch_model.bin if it has them, else no verification)")
    prompt: list[str] = option(
        [], "Add a prompt as name=text (repeatable), beside those in config_sentence_transformers.json",
        flags=("--prompt",))
    default_prompt_name: str | None = option(
        None, "Prompt applied when a request names none (default: the model's default_prompt_name)")
    max_doc_length: int = option(16000, "rerank: documents are cut to this many tokens before chunking (OVMS flag)")
    max_allowed_chunks: int = option(
        10000, "rerank: most (query, chunk) pairs one request may need; more is a 400 (graph.pbtxt option)")
    max_score_diff: float | None = option(
        None, "rerank verification: largest allowed score difference to the reference "
        "(default per weight format: fp32 1e-4, fp16 5e-3, int8 0.06, int4 0.2)")
    min_rank_agreement: float | None = option(
        None, "rerank verification: smallest allowed share of each query's document pairs ordered as the "
        "reference orders them (default per weight format: fp32 1.0, fp16 0.99, int8 0.95, int4 0.9)")
    sparse_top_k: int = option(
        0, "sparse: default pruning written into graph.pbtxt: keep the N heaviest weights (0: all)")
    sparse_threshold: float = option(
        0.0, "sparse: default pruning written into graph.pbtxt: keep weights above this (0: every non-zero one)")
    max_value_diff: float | None = option(
        None, "sparse verification: largest allowed weight difference to the reference, relative to the largest "
        "weight (default per weight format: fp32 1e-4, fp16 0.02, int8 0.15, int4 0.4)")

    def _check(self) -> None:
        _require(self.num_streams >= 0, "--num_streams must be 0 (automatic) or more")
        _require(self.max_doc_length >= 1, "--max_doc_length must be at least 1")
        _require(self.max_allowed_chunks >= 1, "--max_allowed_chunks must be at least 1")
        _require(self.sparse_top_k >= 0, "--sparse_top_k must be 0 (keep all) or more")
        _require(self.sparse_threshold >= 0, "--sparse_threshold must be at least 0")
        _require(self.min_rank_agreement is None or 0 <= self.min_rank_agreement <= 1,
                 "--min_rank_agreement must be between 0 and 1")

    @property
    def served_name(self) -> str:  # a path-like source (./x, ../x, /x, ~/x) is served under its folder's name
        path_like = self.source_model.startswith(("/", "./", "../", "~")) or self.source_model in (".", "..")
        return self.model_name or (Path(self.source_model).expanduser().resolve().name if path_like
                                   else self.source_model)

    @property
    def config_path(self) -> Path:
        return self.config_file_path or self.model_repository_path / "config.json"


@dataclass(frozen=True)
class ListConfig(_Checked):
    """`ovembed list`: the models of a repository's config.json and their state on disk (OVMS --list_models)."""

    model_repository_path: Path = option(Path("models"), "Model repository folder")
    config_file_path: Path | None = option(None, "config.json (default: <model_repository_path>/config.json)")
    json: bool = option(False, "Print JSON instead of a table")

    @property
    def config_path(self) -> Path:
        return self.config_file_path or self.model_repository_path / "config.json"


@dataclass(frozen=True)
class RemoveConfig(_Checked):
    """`ovembed remove`: drop a model from config.json (OVMS --remove_from_config); --delete_files too."""

    model_name: str = option("", "Served name of the model to remove", required=True)
    model_repository_path: Path = option(Path("models"), "Model repository folder")
    config_file_path: Path | None = option(None, "config.json (default: <model_repository_path>/config.json)")
    delete_files: bool = option(False, "Also delete the model's folder (only if inside the repository)")

    @property
    def config_path(self) -> Path:
        return self.config_file_path or self.model_repository_path / "config.json"


@dataclass(frozen=True)
class CompareConfig(_Checked):
    """`ovembed compare`: exported IR vs the PyTorch reference on user texts."""

    model_path: Path = option(Path(), "Exported model folder (with graph.pbtxt)", required=True)
    source_model: str | None = option(None, "Reference model (default: the source recorded at export)")
    input: list[str] = option([], "Text to embed, or document to rerank (repeatable); default: built-in texts",
                              flags=("--input",))
    query: str | None = option(None, "rerank folders: the query the --input documents are scored against")
    trust_remote_code: bool = option(False, "Allow running code shipped with the reference model")


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
        _require(self.lone_shapes_max_mb >= 0, "--lone_shapes_max_mb must be 0 (off) or more")
        for name in ("max_wait_ms", "graceful_timeout", "file_system_poll_wait_seconds", "header_timeout"):
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, f"--{name} cannot be negative, got {value}")


_EMBEDDINGS_URL = "http://127.0.0.1:8000/v3/embeddings"


@dataclass(frozen=True)
class BenchmarkConfig(_Checked):
    """`ovembed benchmark`: async load generator for OpenAI / Ollama embeddings and rerank servers."""

    api_url: str = option(_EMBEDDINGS_URL,
                          "Endpoint: OpenAI /v3/embeddings or /v1/embeddings, Ollama /api/embed, rerank /v3/rerank "
                          "(Cohere/OVMS) or /rerank (TEI); with --task rerank the default becomes .../v3/rerank")
    task: Task = option(Task.EMBEDDINGS, "embeddings; rerank: each request is one query and --batch_size "
                        "documents (pairs/s = docs/s); sparse: TEI's /embed_sparse (the default URL becomes it)")
    model: str = option("", "Model name sent in requests", required=True)
    dataset: str = option("synthetic", "'synthetic' or a file of texts (one per line, or a JSON list)")
    synthetic_length: int = option(40, "Approximate words per synthetic document")
    batch_size: int = option(1, "Inputs per request")
    concurrency: int = option(1, "Requests in flight")
    request_rate: float = option(float("inf"), "Requests per second (Poisson); inf sends as fast as possible")
    limit: int = option(1000, "Documents to send")
    encoding_format: EncodingFormat = option(EncodingFormat.FLOAT, "Encoding the server is asked for")
    api_key: str | None = option(None, "Bearer token", env="API_KEY")
    json: bool = option(False, "Print the results as JSON")
    seed: int = option(0, "Random seed for synthetic data and arrival times")
    warmup: int = option(1, "Unmeasured requests sent first; they also check the URL, model and key")
    timeout: float = option(600.0, "Seconds to wait for one response before counting it as failed")
    scenario: Scenario = option(Scenario.UNIFORM, "uniform: --concurrency clients alike; mixed: one bulk client "
                                "(--bulk_batch_size inputs per request) plus --concurrency interactive clients "
                                "(--batch_size inputs) for --duration seconds: interactive p50/p99, bulk docs/s")
    bulk_batch_size: int = option(1024, "--scenario mixed: inputs per bulk request")
    duration: float = option(30.0, "--scenario mixed: seconds of sending")

    def _check(self) -> None:
        _require(self.bulk_batch_size >= 1, f"--bulk_batch_size must be at least 1, got {self.bulk_batch_size}")
        _require(self.duration > 0, f"--duration must be positive, got {self.duration}")
        _require(self.scenario is Scenario.UNIFORM or self.task is Task.EMBEDDINGS,
                 "--scenario mixed measures embeddings endpoints")
        _require(self.batch_size >= 1, f"--batch_size must be at least 1, got {self.batch_size}")
        _require(self.concurrency >= 1, f"--concurrency must be at least 1, got {self.concurrency}")
        _require(self.limit >= 1, f"--limit must be at least 1, got {self.limit}")
        _require(self.request_rate > 0, "--request_rate must be positive (inf: as fast as possible)")
        _require(self.timeout > 0, f"--timeout must be positive, got {self.timeout}")
        _require(self.warmup >= 0, f"--warmup cannot be negative, got {self.warmup}")
        _require(self.synthetic_length >= 1, f"--synthetic_length must be at least 1, got {self.synthetic_length}")
        _require(self.task is not Task.TOKEN_EMBED, "--task token_embed is not benchmarked yet (its /v3/rerank: "
                 "--task rerank)")
        if self.task is Task.RERANK and self.api_url == _EMBEDDINGS_URL:
            object.__setattr__(self, "api_url", _EMBEDDINGS_URL.replace("/v3/embeddings", "/v3/rerank"))
        if self.task is Task.SPARSE and self.api_url == _EMBEDDINGS_URL:
            object.__setattr__(self, "api_url", _EMBEDDINGS_URL.replace("/v3/embeddings", "/embed_sparse"))
        _require(self.api_url.rstrip("/").endswith("/embed_sparse") == (self.task is Task.SPARSE),
                 f"--task {self.task.value} does not match --api_url {self.api_url} "
                 "(sparse endpoints end in /embed_sparse)")
        rerank_url = self.api_url.rstrip("/").endswith("/rerank")
        _require(rerank_url == (self.task is Task.RERANK),
                 f"--task {self.task.value} does not match --api_url {self.api_url} "
                 "(rerank endpoints end in /rerank)")
