"""`ovembed export`, `list`, `remove` and `compare`: the model-repository commands' options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ovembed.config.base import Pooling, Quantization, Task, WeightFormat, _Checked, _require, option


@dataclass(frozen=True)
class ExportConfig(_Checked):
    """`ovembed export`: flag-compatible with OVMS's export_model.py embeddings_ov and rerank_ov."""

    task: Task = option(Task.EMBEDDINGS, "What the model does: embeddings (embeddings_ov), rerank (rerank_ov, "
                        "a cross-encoder with one logit), sparse (a SPLADE-style masked LM), token_embed "
                        "(ColBERT-style token vectors), bge_m3 (BGE-M3's dense, sparse and multi-vector heads "
                        "in one IR) or classify (a sequence classifier with several labels); the last four are "
                        "ovembed only")
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
        "(default per weight format: fp32 1e-4, fp16 5e-3, int8 0.06, int4 0.2); classify: largest logit "
        "difference (fp32 1e-3, fp16 0.05, int8 0.5, int4 1.0)")
    min_rank_agreement: float | None = option(
        None, "rerank verification: smallest allowed share of each query's document pairs ordered as the "
        "reference orders them (default per weight format: fp32 1.0, fp16 0.99, int8 0.95, int4 0.9); classify: "
        "smallest share of inputs with the reference's top label (fp32 1.0, fp16 0.99, int8 0.9, int4 0.85)")
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
