"""`ovembed export`: orchestrates source -> convert -> quantize -> tokenizer -> graph -> verify,
in a temporary folder next to the target that is renamed into place only when all of it worked.
"""

from __future__ import annotations

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
from ovembed.export import require_export_stack
from ovembed.export.common import Log, quiet_libraries
from ovembed.export.convert import IR_BIN, IR_XML
from ovembed.export.ir_source import TOKENIZER_IRS, is_ir_folder, require_ir_stack
from ovembed.export.quantize import parse_extra_params
from ovembed.export.source import inspect_source
from ovembed.export.static_quant import Calibration, load_calibration
from ovembed.export.task import ExportTask, write_record
from ovembed.export.tasks import EXPORT_TASKS, export_task_for
from ovembed.repository import make_readable_dir, model_dir_for, read_record, upsert_model

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
    score_reference: str = "CrossEncoder"  # what rerank scores were compared with

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
            parts.append(f"  vs {self.score_reference} reference: max score difference {self.max_score_diff:.6f}, "
                         f"rank agreement {self.rank_agreement:.3f}")
        if self.max_value_diff is not None:
            parts.append(f"  vs PyTorch masked-LM reference: max relative weight difference {self.max_value_diff:.6f}, "
                         f"top-k agreement {self.topk_agreement:.3f}")
        parts.append(f"  config: {self.config_path}")
        return "\n".join(parts)


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


def _check_ir_options(cfg: ExportConfig, task: type[ExportTask]) -> None:
    """Options that change how a model is converted or compressed do not apply to an IR used as it is."""
    if cfg.extra_quantization_params:
        raise ExportError("--extra_quantization_params does not apply to an OpenVINO IR source (it is used as "
                          "published); export from the PyTorch model to compress it yourself")
    if cfg.quantization is Quantization.STATIC:
        raise ExportError("--quantization static does not apply to an OpenVINO IR source (it is used as published)")
    if task.ir_refusal is not None:
        raise ExportError(task.ir_refusal)


def export_model(cfg: ExportConfig, log: Log = lambda _: None) -> ExportResult:
    """Export ``cfg.source_model`` into the repository; see the module docstring for guarantees."""
    start = time.perf_counter()
    kind = EXPORT_TASKS[cfg.task]
    params = parse_extra_params(cfg.extra_quantization_params)  # validate flags before any work
    params.check(cfg.weight_format)
    calibration: Calibration | None = None
    if cfg.quantization is Quantization.STATIC:
        if not kind.static_quantization:
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
    kind = export_task_for(cfg.task, source.path)  # the task's variant for this source, if it has one
    from_ir = is_ir_folder(source.path)
    if from_ir:
        _check_ir_options(cfg, kind)
        has_tokenizers = (source.path / TOKENIZER_IRS[0]).is_file() and (source.path / "tokenizer.json").is_file()
        require_ir_stack(need_tokenizer_conversion=not has_tokenizers or kind.ir_converts_tokenizer)
    else:
        require_export_stack()
    if source.hub is not None:
        at = f" at {source.hub.commit}" if source.hub.commit else ""
        ir = "OpenVINO IR, " if source.hub.is_openvino_ir else ""
        log(f"source: {source.hub.repo_id}{at} from the Hugging Face Hub "
            f"({ir}{len(source.hub.files)} files in {source.path})")
    task = kind(cfg, source, log)
    task.choices = task.check()
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
            if record:
                write_record(target, {**record, **task.refreshed_fields()})
            task.write_graph(target)
            upsert_model(cfg.config_path, name, target)
        else:
            work = Path(tempfile.mkdtemp(prefix=f".{target.name}{_TMP_MARK}", dir=target.parent))
            make_readable_dir(work)
            task.work = work
            try:
                if from_ir:
                    record, weight_format = task.build_from_ir()
                else:
                    quiet_libraries()
                    record = task.build(params, calibration)
                write_record(work, record)
                task.write_graph(work)
                min_cos = record.get("verification", {}).get("min_cosine")
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
    return ExportResult(name, target, Path(cfg.config_path), task.choices.pooling, weight_format, max_length, reused,
                        time.perf_counter() - start, min_cos, sizes, task=cfg.task,
                        max_score_diff=verification.get("max_score_diff"),
                        rank_agreement=verification.get("rank_agreement"),
                        score_reference=verification.get("reference", "CrossEncoder"),
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
