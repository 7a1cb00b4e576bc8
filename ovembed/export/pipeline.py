"""`ovembed export`: orchestrates source -> convert -> quantize -> tokenizer -> graph -> verify,
in a temporary folder next to the target that is renamed into place only when all of it worked.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovembed import __version__
from ovembed.config import ExportConfig, Pooling, Quantization, Task, WeightFormat
from ovembed.errors import ExportError
from ovembed.export import require_export_stack
from ovembed.export.convert import IR_BIN, IR_XML
from ovembed.export.ir_source import TOKENIZER_IRS, is_ir_folder, require_ir_stack
from ovembed.export.quantize import QuantizationParams, parse_extra_params
from ovembed.export.source import SourceModel, inspect_source
from ovembed.export.static_quant import STATIC_MIN_COSINE, Calibration, load_calibration
from ovembed.graphs import (
    GraphOptions,
    RerankGraphOptions,
    SparseGraphOptions,
    write_graph,
    write_rerank_graph,
    write_sparse_graph,
)
from ovembed.hf_files import read_json_object
from ovembed.prompts import PromptSet, parse_prompt_flags, read_model_prompts
from ovembed.repository import (
    RECORD_FILENAME,
    atomic_write_text,
    make_readable_dir,
    model_dir_for,
    read_record,
    upsert_model,
)

_TMP_MARK = ".ovembed-tmp-"
Log = Callable[[str], None]


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


def versions() -> dict[str, str]:
    """Versions of ovembed and the export stack, recorded next to every export."""
    out = {"ovembed": __version__}
    for dist in ("openvino", "openvino-tokenizers", "optimum-intel", "optimum", "nncf", "transformers", "torch",
                 "sentence-transformers"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def _choose_pooling(cfg: ExportConfig, source: SourceModel, log: Log) -> Pooling:
    if cfg.pooling is not None:
        log(f"pooling: {cfg.pooling.value} (from --pooling)")
        return cfg.pooling
    if source.pooling_detected is not None:
        log(f"pooling: {source.pooling_detected.value} (from the model's sentence-transformers Pooling config)")
        return source.pooling_detected
    log("pooling: CLS (default; the model has no 1_Pooling/config.json)")
    return Pooling.CLS


def _choose_prompts(cfg: ExportConfig, source: SourceModel, log: Log) -> PromptSet:
    """The model's own prompts, plus (or overridden by) ``--prompt``; the default from
    ``--default_prompt_name``, else the model's."""
    own, own_default = read_model_prompts(source.path)
    added = parse_prompt_flags(list(cfg.prompt))
    prompts = {**own, **added}
    default = cfg.default_prompt_name if cfg.default_prompt_name is not None else own_default
    if default is not None and default not in prompts:
        raise ExportError(f"--default_prompt_name {default!r} is not one of the prompts "
                          f"({', '.join(prompts) or 'none'}); add it with --prompt {default}=...")
    if prompts:
        log(f"prompts: {', '.join(prompts)}" + (f" (default {default})" if default else ""))
    return PromptSet(prompts, default)


def _own_prompt_names(source: SourceModel, prompts: PromptSet) -> list[str]:
    """Names whose text is the model's own (verified with sentence-transformers' prompt_name)."""
    own, _ = read_model_prompts(source.path)
    return [name for name, text in prompts.prompts.items() if own.get(name) == text]


def _graph_options(cfg: ExportConfig, pooling: Pooling) -> GraphOptions:
    plugin: dict[str, Any] = {"NUM_STREAMS": str(cfg.num_streams)}
    if cfg.ov_cache_dir is not None:
        plugin["CACHE_DIR"] = str(cfg.ov_cache_dir)
    return GraphOptions(models_path="./", normalize_embeddings=not cfg.skip_normalize, pooling=pooling,
                        truncate=cfg.truncate, target_device=cfg.target_device, plugin_config=plugin)


def _rerank_graph_options(cfg: ExportConfig) -> RerankGraphOptions:
    plugin: dict[str, Any] = {"NUM_STREAMS": str(cfg.num_streams)}
    if cfg.ov_cache_dir is not None:
        plugin["CACHE_DIR"] = str(cfg.ov_cache_dir)
    return RerankGraphOptions(models_path="./", max_allowed_chunks=cfg.max_allowed_chunks,
                              target_device=cfg.target_device, plugin_config=plugin)


def _sparse_graph_options(cfg: ExportConfig) -> SparseGraphOptions:
    plugin: dict[str, Any] = {"NUM_STREAMS": str(cfg.num_streams)}
    if cfg.ov_cache_dir is not None:
        plugin["CACHE_DIR"] = str(cfg.ov_cache_dir)
    return SparseGraphOptions(models_path="./", target_device=cfg.target_device, plugin_config=plugin,
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


def _quiet_libraries() -> None:
    """transformers, NNCF and optimum print progress tables and load reports; keep the CLI readable."""
    import logging

    import transformers

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    for name in ("nncf", "optimum", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _hub_record(source: SourceModel) -> dict[str, Any]:
    if source.hub is None:
        return {}
    return {"source_revision": source.hub.revision or "main", "source_commit": source.hub.commit}


def _threshold(cfg: ExportConfig) -> float:
    if cfg.min_cosine is not None:
        return cfg.min_cosine
    from ovembed.export.verify import DEFAULT_MIN_COSINE

    return STATIC_MIN_COSINE if cfg.quantization is Quantization.STATIC else DEFAULT_MIN_COSINE[cfg.weight_format]


def _static_int8(cfg: ExportConfig, source: SourceModel, pooling: Pooling, calibration: Calibration,
                 xml: Path, log: Log) -> dict[str, Any]:
    from ovembed.export.static_quant import quantize_static
    from ovembed.export.tokenizer import load_hf_tokenizer
    from ovembed.export.verify import SENTENCES, reference_embeddings

    use_st = source.is_sentence_transformers and source.pooling_detected is pooling

    def reference(texts: list[str]) -> Any:
        return reference_embeddings(source.path, texts, pooling=pooling, max_length=source.max_length,
                                    trust_remote_code=cfg.trust_remote_code, use_sentence_transformers=use_st)

    tok = load_hf_tokenizer(source.path, max_length=source.max_length, trust_remote_code=cfg.trust_remote_code)
    return quantize_static(xml, tok, calibration, max_length=source.max_length, pooling=pooling,
                           reference=reference, gate_texts=SENTENCES, threshold=_threshold(cfg), log=log)


def _tokenize_for(cfg: ExportConfig, source: SourceModel) -> Callable[[str], dict[str, Any]]:
    """text -> numpy model inputs with the source's HF tokenizer (data-aware weight compression)."""
    from ovembed.export.tokenizer import load_hf_tokenizer

    tok = load_hf_tokenizer(source.path, max_length=source.max_length, trust_remote_code=cfg.trust_remote_code)
    return lambda text: dict(tok([text], truncation=True, max_length=source.max_length, return_tensors="np"))


def _build(cfg: ExportConfig, source: SourceModel, pooling: Pooling, params: QuantizationParams,
           prompts: PromptSet, work: Path, log: Log, calibration: Calibration | None = None) -> dict[str, Any]:
    """Everything that produces the model folder's content, inside ``work``."""
    from ovembed.export.convert import convert_to_ir
    from ovembed.export.quantize import compress_and_save
    from ovembed.export.tokenizer import export_tokenizer, load_hf_tokenizer

    _quiet_libraries()
    if params.library == "sentence_transformers":
        log("note: --library sentence_transformers: converting through transformers; "
            "ovembed applies the model's pooling and normalisation inside the OpenVINO graph")
    t0 = time.perf_counter()
    log(f"converting {source.path} with optimum-intel (task feature-extraction)")
    xml = convert_to_ir(source, work, trust_remote_code=cfg.trust_remote_code)
    log(f"  converted in {time.perf_counter() - t0:.1f}s")
    t1 = time.perf_counter()
    if calibration is not None:
        applied = _static_int8(cfg, source, pooling, calibration, xml, log)
    else:
        tokenize = _tokenize_for(cfg, source) if params.dataset is not None else None
        applied = compress_and_save(xml, cfg.weight_format, params, tokenize)
    log(f"  weights {cfg.weight_format.value} in {time.perf_counter() - t1:.1f}s")
    tok = load_hf_tokenizer(source.path, max_length=source.max_length, trust_remote_code=cfg.trust_remote_code)
    export_tokenizer(tok, work)
    record = _record(cfg, source, pooling, prompts, cfg.weight_format, {**applied, **params.describe()})
    if not cfg.skip_verify:
        record["verification"] = _verify(cfg, source, source, pooling, prompts, _threshold(cfg), work, log)
    atomic_write_text(work / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
    return record


def _record(cfg: ExportConfig, source: SourceModel, pooling: Pooling, prompts: PromptSet,
            weight_format: WeightFormat, quantization: dict[str, Any]) -> dict[str, Any]:
    return {
        "source_model": cfg.source_model,
        "source_path": str(source.path),
        **_hub_record(source),
        "model_type": source.model_type,
        "pooling": pooling.value,
        "normalize": not cfg.skip_normalize,
        "weight_format": weight_format.value,
        "quantization": quantization,
        "max_length": source.max_length,
        "max_length_origin": source.max_length_origin,
        "dimensions": source.hidden_size,
        "prompts": dict(prompts.prompts),
        "default_prompt_name": prompts.default_name,
        "versions": versions(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _verify(cfg: ExportConfig, source: SourceModel, reference: SourceModel, pooling: Pooling, prompts: PromptSet,
            threshold: float, work: Path, log: Log) -> dict[str, Any]:
    """Compare the IR in ``work`` with the PyTorch model ``reference``; raise when it fails."""
    from ovembed.export.verify import SENTENCES, compare

    use_st = reference.is_sentence_transformers and reference.pooling_detected is pooling
    log(f"verifying against the PyTorch reference ({'sentence-transformers' if use_st else 'transformers'}),"
        f" {len(SENTENCES)} sentences" + (f", {len(prompts.prompts)} prompt(s)" if prompts.prompts else ""))
    result = compare(work, reference.path, list(SENTENCES), pooling=pooling, max_length=source.max_length,
                     threshold=threshold, trust_remote_code=cfg.trust_remote_code, use_sentence_transformers=use_st,
                     prompts=prompts.prompts, own_prompts=_own_prompt_names(reference, prompts))
    log(f"  min cosine {result.min_cosine:.6f} (threshold {threshold})")
    if result.tokenizer_mismatches:
        log(f"  warning: openvino_tokenizer.xml differs from the HF tokenizer on {len(result.tokenizer_mismatches)}"
            f" of {len(SENTENCES)} sentences (ovembed serves with tokenizer.json; OVMS uses the IR)")
    if not result.passed:
        raise ExportError("verification failed, nothing was written:\n" + result.summary())
    return {"min_cosine": result.min_cosine, "threshold": threshold, "texts": len(result.texts),
            "tokenizer_ir_mismatches": len(result.tokenizer_mismatches)}


def _build_from_ir(cfg: ExportConfig, source: SourceModel, pooling: Pooling, prompts: PromptSet, work: Path,
                   log: Log) -> tuple[dict[str, Any], WeightFormat]:
    """An OpenVINO IR source used as it is (see :mod:`ovembed.export.ir_source`), inside ``work``."""
    from ovembed.export import ir_source

    architectures = read_json_object(source.path / "config.json").get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise ExportError(f"{cfg.source_model} is a cross-encoder (sequence classification): export it with "
                          "--task rerank")
    ir_source.check_ir_outputs(source.path / IR_XML, rerank=False)
    copied = ir_source.copy_ir(source.path, work)
    origin = ir_source.prepare_tokenizer(source.path, work, max_length=source.max_length,
                                         trust_remote_code=cfg.trust_remote_code)
    weight_format = ir_source.ir_weight_format(work / IR_XML)
    ir_source.describe_ir_use(weight_format, cfg.weight_format, origin, log)
    fields = ir_source.ir_record_fields(origin, copied)
    record = {**_record(cfg, source, pooling, prompts, weight_format, fields.pop("quantization")), **fields}
    reference_path = None if cfg.skip_verify else ir_source.resolve_reference(
        cfg.reference_model, source.path, revision=None, token=cfg.hf_token, quiet=cfg.quiet)
    if reference_path is not None:
        require_export_stack()
        _quiet_libraries()
        reference = source if reference_path == source.path else inspect_source(str(reference_path))
        from ovembed.export.verify import DEFAULT_MIN_COSINE

        threshold = cfg.min_cosine if cfg.min_cosine is not None else DEFAULT_MIN_COSINE[weight_format]
        record["verification"] = _verify(cfg, source, reference, pooling, prompts, threshold, work, log)
        record["reference_model"] = cfg.reference_model or cfg.source_model
    elif not cfg.skip_verify:
        log("not verified: the source holds no PyTorch weights; pass --reference_model ORG/NAME to compare "
            "the IR with its PyTorch model")
    atomic_write_text(work / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
    return record, weight_format


def _build_rerank_from_ir(cfg: ExportConfig, source: SourceModel, work: Path,
                          log: Log) -> tuple[dict[str, Any], WeightFormat]:
    """A cross-encoder published as OpenVINO IR, used as it is; verified against a CrossEncoder reference
    when there is one (its own weights or ``--reference_model``)."""
    from ovembed.export import ir_source
    from ovembed.export.rerank import declared_activation, head_for
    from ovembed.export.tokenizer import load_hf_tokenizer

    ir_source.check_ir_outputs(source.path / IR_XML, rerank=True)
    copied = ir_source.copy_ir(source.path, work)
    tok = load_hf_tokenizer(source.path, max_length=source.max_length, trust_remote_code=cfg.trust_remote_code)
    head = head_for(tok, declared_activation(source.path))
    origin = ir_source.prepare_tokenizer(source.path, work, max_length=source.max_length,
                                         trust_remote_code=cfg.trust_remote_code, add_special_tokens=False)
    weight_format = ir_source.ir_weight_format(work / IR_XML)
    ir_source.describe_ir_use(weight_format, cfg.weight_format, origin, log)
    fields = ir_source.ir_record_fields(origin, copied)
    record: dict[str, Any] = {
        "task": "rerank", "source_model": cfg.source_model, "source_path": str(source.path), **_hub_record(source),
        "model_type": source.model_type, "rerank_head": head.describe(), "max_doc_length": cfg.max_doc_length,
        "weight_format": weight_format.value, "max_length": source.max_length,
        "max_length_origin": source.max_length_origin, "versions": versions(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    reference = None if cfg.skip_verify else ir_source.resolve_reference(
        cfg.reference_model, source.path, revision=None, token=cfg.hf_token, quiet=cfg.quiet)
    if reference is not None:
        require_export_stack()
        _quiet_libraries()
        from ovembed.export.verify_rerank import (
            DEFAULT_MAX_SCORE_DIFF,
            DEFAULT_MIN_RANK_AGREEMENT,
            builtin_pairs,
            compare_scores,
        )

        max_diff = cfg.max_score_diff if cfg.max_score_diff is not None else DEFAULT_MAX_SCORE_DIFF[weight_format]
        min_agree = DEFAULT_MIN_RANK_AGREEMENT[weight_format]
        pairs = builtin_pairs()
        log(f"verifying against sentence_transformers.CrossEncoder, {len(pairs)} (query, document) pairs")
        result = compare_scores(work, reference, pairs, head=head, max_length=source.max_length, max_diff=max_diff,
                                min_agreement=min_agree, trust_remote_code=cfg.trust_remote_code)
        log(f"  max score difference {result.max_diff:.6f} (threshold {max_diff}), "
            f"rank agreement {result.rank_agreement:.3f} (threshold {min_agree})")
        if not result.passed:
            raise ExportError("verification failed, nothing was written:\n" + result.summary())
        record["verification"] = {"max_score_diff": result.max_diff, "threshold": max_diff,
                                  "rank_agreement": result.rank_agreement, "min_rank_agreement": min_agree,
                                  "pairs": len(pairs)}
        record["reference_model"] = cfg.reference_model or cfg.source_model
    elif not cfg.skip_verify:
        log("not verified: the source holds no PyTorch weights; pass --reference_model ORG/NAME to compare "
            "the IR with its CrossEncoder")
    atomic_write_text(work / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
    return record, weight_format


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
        pooling = _choose_pooling(cfg, source, log)
    prompts = _choose_prompts(cfg, source, log) if cfg.task is not Task.RERANK else PromptSet()
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
                    record, weight_format = _build_rerank_from_ir(cfg, source, work, log)
                elif cfg.task is Task.RERANK:
                    from ovembed.export.rerank import build_rerank

                    _quiet_libraries()
                    record = {**build_rerank(cfg, source, params, work, log, versions()), **_hub_record(source)}
                    atomic_write_text(work / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
                elif cfg.task is Task.SPARSE:
                    from ovembed.export.sparse import build_sparse

                    _quiet_libraries()
                    record = build_sparse(cfg, source, params, prompts, work, log, versions())
                    atomic_write_text(work / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
                elif from_ir:
                    record, weight_format = _build_from_ir(cfg, source, pooling, prompts, work, log)
                else:
                    record = _build(cfg, source, pooling, params, prompts, work, log, calibration)
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
