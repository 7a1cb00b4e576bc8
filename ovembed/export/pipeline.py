"""`ovembed export`: orchestrates source -> convert -> quantize -> tokenizer -> graph -> verify,
in a temporary folder next to the target that is renamed into place only when all of it worked.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovembed.config import ExportConfig, Pooling, Quantization, Task, WeightFormat
from ovembed.errors import ExportError
from ovembed.export import embeddings, require_export_stack
from ovembed.export.common import Log, hub_record, plugin_config, quiet_libraries, versions
from ovembed.export.convert import IR_BIN, IR_XML
from ovembed.export.ir_source import TOKENIZER_IRS, is_ir_folder, require_ir_stack
from ovembed.export.quantize import parse_extra_params
from ovembed.export.source import inspect_source
from ovembed.export.static_quant import Calibration, load_calibration
from ovembed.graphs import (
    GraphOptions,
    RerankGraphOptions,
    SparseGraphOptions,
    write_graph,
    write_rerank_graph,
    write_sparse_graph,
)
from ovembed.prompts import PromptSet
from ovembed.repository import (
    RECORD_FILENAME,
    atomic_write_text,
    make_readable_dir,
    model_dir_for,
    read_record,
    upsert_model,
)

_TMP_MARK = ".ovembed-tmp-"


@dataclass
class ExportResult:
    name: str
    model_dir: Path
    config_path: Path
    pooling: Pooling
    weight_format: WeightFormat
    max_length: int
    reused: bool
    seconds: float
    min_cosine: float | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    task: Task = Task.EMBEDDINGS
    max_score_diff: float | None = None  # rerank verification
    rank_agreement: float | None = None
    max_value_diff: float | None = None  # sparse verification
    topk_agreement: float | None = None

    def summary(self) -> str:
        what = "kept existing model files, refreshed graph.pbtxt and config.json" if self.reused else "exported"
        ir = self.sizes.get(IR_BIN)
        shape = self.task.value if self.task is not Task.EMBEDDINGS else f"pooling {self.pooling.value}"
        parts = [f"{self.name}: {what} in {self.seconds:.1f}s -> {self.model_dir}",
                 f"  {shape}, weights {self.weight_format.value}, max length {self.max_length}"]
        if ir is not None:
            parts.append(f"  IR weights {ir / 1e6:.1f} MB")
        if self.min_cosine is not None:
            parts.append(f"  min cosine vs PyTorch reference: {self.min_cosine:.6f}")
        if self.max_score_diff is not None:
            parts.append(f"  vs CrossEncoder reference: max score difference {self.max_score_diff:.6f}, "
                         f"rank agreement {self.rank_agreement:.3f}")
        if self.max_value_diff is not None:
            parts.append(f"  vs PyTorch masked-LM reference: max relative weight difference {self.max_value_diff:.6f}, "
                         f"top-k agreement {self.topk_agreement:.3f}")
        parts.append(f"  config: {self.config_path}")
        return "\n".join(parts)


def _graph_options(cfg: ExportConfig, pooling: Pooling) -> GraphOptions:
    return GraphOptions(models_path="./", normalize_embeddings=not cfg.skip_normalize, pooling=pooling,
                        truncate=cfg.truncate, target_device=cfg.target_device, plugin_config=plugin_config(cfg))


def _rerank_graph_options(cfg: ExportConfig) -> RerankGraphOptions:
    return RerankGraphOptions(models_path="./", max_allowed_chunks=cfg.max_allowed_chunks,
                              target_device=cfg.target_device, plugin_config=plugin_config(cfg))


def _sparse_graph_options(cfg: ExportConfig) -> SparseGraphOptions:
    return SparseGraphOptions(models_path="./", target_device=cfg.target_device, plugin_config=plugin_config(cfg),
                              truncate=cfg.truncate, top_k=cfg.sparse_top_k or None, threshold=cfg.sparse_threshold)


def _write_task_graph(cfg: ExportConfig, pooling: Pooling, folder: Path) -> None:
    if cfg.task is Task.RERANK:
        write_rerank_graph(folder, _rerank_graph_options(cfg))
    elif cfg.task is Task.SPARSE:
        write_sparse_graph(folder, _sparse_graph_options(cfg))
    else:
        write_graph(folder, _graph_options(cfg, pooling))


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let `kill` (SIGTERM) unwind like Ctrl-C so the temporary folder is removed."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _clean_stale_temp(parent: Path, leaf: str, log: Log) -> None:
    for stale in parent.glob(f".{leaf}{_TMP_MARK}*"):
        log(f"removing leftovers of an interrupted export: {stale}")
        shutil.rmtree(stale, ignore_errors=True)


def _check_ir_options(cfg: ExportConfig) -> None:
    """Options that change how a model is converted or compressed do not apply to an IR used as it is."""
    if cfg.extra_quantization_params:
        raise ExportError("--extra_quantization_params does not apply to an OpenVINO IR source (it is used as "
                          "published); export from the PyTorch model to compress it yourself")
    if cfg.quantization is Quantization.STATIC:
        raise ExportError("--quantization static does not apply to an OpenVINO IR source (it is used as published)")
    if cfg.task is Task.SPARSE:
        raise ExportError("--task sparse from an OpenVINO IR source is not supported yet; export the "
                          "masked language model from its PyTorch model")


def export_model(cfg: ExportConfig, log: Log = lambda _: None) -> ExportResult:
    """Export ``cfg.source_model`` into the repository; see the module docstring for guarantees."""
    start = time.perf_counter()
    params = parse_extra_params(cfg.extra_quantization_params)  # validate flags before any work
    params.check(cfg.weight_format)
    calibration: Calibration | None = None
    if cfg.quantization is Quantization.STATIC:
        if cfg.task is not Task.EMBEDDINGS:
            raise ExportError("--quantization static is for embeddings models only")
        if cfg.weight_format is not WeightFormat.INT8:
            raise ExportError("--quantization static needs --weight-format int8 "
                              f"(got {cfg.weight_format.value})")
        calibration = load_calibration(cfg.calibration_file, cfg.num_samples)
    name = cfg.served_name
    repo = Path(cfg.model_repository_path)
    target = model_dir_for(repo, name)
    local = Path(cfg.source_model).expanduser()
    if local.is_dir() and not is_ir_folder(local):
        require_export_stack()  # before any work; a Hub id is checked once its files say what it is
    source = inspect_source(cfg.source_model, revision=cfg.revision, token=cfg.hf_token, quiet=cfg.quiet)
    from_ir = is_ir_folder(source.path)
    if from_ir:
        _check_ir_options(cfg)
        has_tokenizers = (source.path / TOKENIZER_IRS[0]).is_file() and (source.path / "tokenizer.json").is_file()
        require_ir_stack(need_tokenizer_conversion=not has_tokenizers or cfg.task is Task.RERANK)
    else:
        require_export_stack()
    if source.hub is not None:
        at = f" at {source.hub.commit}" if source.hub.commit else ""
        kind = "OpenVINO IR, " if source.hub.is_openvino_ir else ""
        log(f"source: {source.hub.repo_id}{at} from the Hugging Face Hub "
            f"({kind}{len(source.hub.files)} files in {source.path})")
    if cfg.task is Task.RERANK:
        from ovembed.export.rerank import check_cross_encoder

        check_cross_encoder(source)
        pooling = Pooling.CLS  # unused: a rerank head scores pairs
    elif cfg.task is Task.SPARSE:
        from ovembed.export.sparse import check_masked_lm

        check_masked_lm(source)
        pooling = Pooling.CLS  # unused: the sparse head max-pools over tokens
    else:
        pooling = embeddings.choose_pooling(cfg, source, log)
    prompts = embeddings.choose_prompts(cfg, source, log) if cfg.task is not Task.RERANK else PromptSet()
    repo.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_temp(target.parent, target.name, log)

    reused = (target / IR_XML).is_file() and not cfg.overwrite_models
    weight_format = cfg.weight_format
    min_cos: float | None = None
    with _sigterm_as_interrupt():
        if reused:
            log(f"{target} exists: keeping its model files (use --overwrite_models to re-export)")
            record = read_record(target)
            if record.get("task", Task.EMBEDDINGS.value) != cfg.task.value:
                raise ExportError(f"{target} holds a {record.get('task', 'embeddings')} model; "
                                  f"use --overwrite_models to replace it with a {cfg.task.value} export")
            if record and cfg.task is Task.EMBEDDINGS:
                record.update(pooling=pooling.value, normalize=not cfg.skip_normalize,
                              prompts=dict(prompts.prompts), default_prompt_name=prompts.default_name)
                atomic_write_text(target / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
            elif record and cfg.task is Task.SPARSE:
                record.update(prompts=dict(prompts.prompts), default_prompt_name=prompts.default_name)
                atomic_write_text(target / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
            elif record:
                record.update(max_doc_length=cfg.max_doc_length)
                atomic_write_text(target / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
            _write_task_graph(cfg, pooling, target)
            upsert_model(cfg.config_path, name, target)
        else:
            work = Path(tempfile.mkdtemp(prefix=f".{target.name}{_TMP_MARK}", dir=target.parent))
            make_readable_dir(work)
            try:
                if cfg.task is Task.RERANK and from_ir:
                    from ovembed.export.rerank import build_rerank_from_ir

                    record, weight_format = build_rerank_from_ir(cfg, source, work, log)
                elif cfg.task is Task.RERANK:
                    from ovembed.export.rerank import build_rerank

                    quiet_libraries()
                    record = {**build_rerank(cfg, source, params, work, log, versions()), **hub_record(source)}
                    atomic_write_text(work / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
                elif cfg.task is Task.SPARSE:
                    from ovembed.export.sparse import build_sparse

                    quiet_libraries()
                    record = build_sparse(cfg, source, params, prompts, work, log, versions())
                    atomic_write_text(work / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
                elif from_ir:
                    record, weight_format = embeddings.build_from_ir(cfg, source, pooling, prompts, work, log)
                else:
                    record = embeddings.build(cfg, source, pooling, params, prompts, work, log, calibration)
                _write_task_graph(cfg, pooling, work)
                verification = record.get("verification", {})
                min_cos = verification.get("min_cosine")
                _swap_into_place(work, target)
                upsert_model(cfg.config_path, name, target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
                _remove_empty_parents(target.parent, repo)
    sizes = {p.name: p.stat().st_size for p in target.iterdir() if p.is_file()}
    max_length = int(read_record(target).get("max_length") or source.max_length)
    verification = read_record(target).get("verification") or {}
    if reused:
        weight_format = WeightFormat(read_record(target).get("weight_format") or cfg.weight_format.value)
    return ExportResult(name, target, Path(cfg.config_path), pooling, weight_format, max_length, reused,
                        time.perf_counter() - start, min_cos, sizes, task=cfg.task,
                        max_score_diff=verification.get("max_score_diff"),
                        rank_agreement=verification.get("rank_agreement"),
                        max_value_diff=verification.get("max_value_diff"),
                        topk_agreement=verification.get("topk_agreement"))


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    """Drop namespace folders (the 'BAAI' of 'BAAI/bge') that a failed export left empty."""
    stop = stop.resolve()
    folder = folder.resolve()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _swap_into_place(work: Path, target: Path) -> None:
    """Rename ``work`` to ``target``; an existing target (overwrite) is moved aside first."""
    old: Path | None = None
    if target.exists():
        old = target.with_name(f".{target.name}{_TMP_MARK}old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    try:
        work.rename(target)
    except OSError as exc:
        if old is not None:
            old.rename(target)
        raise ExportError(f"cannot move the export into {target}: {exc.strerror}") from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
