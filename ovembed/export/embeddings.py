"""`ovembed export` of an embeddings model: convert (or take an OpenVINO IR as published),
compress, export the tokenizer, and verify against the PyTorch reference, inside the pipeline's
temporary folder (:mod:`ovembed.export.pipeline` owns the folder and its atomic rename)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ovembed.config import ExportConfig, Pooling, Quantization, WeightFormat
from ovembed.errors import ExportError
from ovembed.export import require_export_stack
from ovembed.export.common import Log, hub_record, quiet_libraries, versions
from ovembed.export.convert import IR_XML
from ovembed.export.quantize import QuantizationParams
from ovembed.export.source import SourceModel, inspect_source
from ovembed.export.static_quant import STATIC_MIN_COSINE, Calibration
from ovembed.heads.st_modules import HeadSpec
from ovembed.hf_files import read_json_object
from ovembed.prompts import PromptSet, parse_prompt_flags, read_model_prompts
from ovembed.repository import RECORD_FILENAME, atomic_write_text


def choose_pooling(cfg: ExportConfig, source: SourceModel, log: Log) -> Pooling:
    """The graph's pooling. First refuses (one line, before any work) a modules.json chain ovembed cannot
    compile into the graph (:func:`ovembed.export.st_head.check_modules`)."""
    from ovembed.export.st_head import chain_pooling, check_modules

    entries = check_modules(source.path)
    if cfg.pooling is not None:
        log(f"pooling: {cfg.pooling.value} (from --pooling)")
        return cfg.pooling
    if source.pooling_detected is not None:
        log(f"pooling: {source.pooling_detected.value} (from the model's sentence-transformers Pooling config)")
        return source.pooling_detected
    chained = chain_pooling(source.path, entries)
    if chained is not None:
        log(f"pooling: {chained.value} in graph.pbtxt (the nearest OVMS pooling to the model's Pooling module)")
        return chained
    log("pooling: CLS (default; the model has no 1_Pooling/config.json)")
    return Pooling.CLS


def choose_prompts(cfg: ExportConfig, source: SourceModel, log: Log) -> PromptSet:
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


def _use_st(cfg: ExportConfig, reference: SourceModel, pooling: Pooling) -> bool:
    """sentence-transformers is the reference for its own folders unless --pooling changed the pooling."""
    return reference.is_sentence_transformers and (cfg.pooling is None or reference.pooling_detected is pooling)


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

    use_st = _use_st(cfg, source, pooling)

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


def build(cfg: ExportConfig, source: SourceModel, pooling: Pooling, params: QuantizationParams,
           prompts: PromptSet, work: Path, log: Log, calibration: Calibration | None = None) -> dict[str, Any]:
    """Everything that produces the model folder's content, inside ``work``."""
    from ovembed.export.architectures import convert
    from ovembed.export.quantize import compress_and_save
    from ovembed.export.st_head import read_head
    from ovembed.export.tokenizer import export_tokenizer, load_hf_tokenizer

    quiet_libraries()
    if params.library == "sentence_transformers":
        log("note: --library sentence_transformers: converting through transformers; "
            "ovembed applies the model's pooling and normalisation inside the OpenVINO graph")
    t0 = time.perf_counter()
    head = read_head(source.path, pooling, cfg.pooling is not None, not cfg.skip_normalize, log)
    xml, route = convert(source, work, trust_remote_code=cfg.trust_remote_code, log=log)
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
    record.update(_head_record(head, source, work), route=route)
    if not cfg.skip_verify:
        record["verification"] = _verify(cfg, source, source, pooling, prompts, _threshold(cfg), work, log, head)
    atomic_write_text(work / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
    return record


def _head_record(head: HeadSpec, source: SourceModel, work: Path) -> dict[str, Any]:
    """The module chain for ovembed_model.json (its weights saved into ``work``)."""
    head.save_weights(work)
    out: dict[str, Any] = {"head": head.record()}
    hidden = source.hidden_size or read_json_object(source.path / "config.json").get("d_model")  # T5: d_model
    if isinstance(hidden, int):
        out["dimensions"] = head.output_dim(hidden)
    return out


def _record(cfg: ExportConfig, source: SourceModel, pooling: Pooling, prompts: PromptSet,
            weight_format: WeightFormat, quantization: dict[str, Any]) -> dict[str, Any]:
    return {
        "source_model": cfg.source_model,
        "source_path": str(source.path),
        **hub_record(source),
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
            threshold: float, work: Path, log: Log, head: HeadSpec | None = None) -> dict[str, Any]:
    """Compare the IR in ``work`` with the PyTorch model ``reference``; raise when it fails."""
    from ovembed.export.verify import SENTENCES, compare

    use_st = _use_st(cfg, reference, pooling)
    log(f"verifying against the PyTorch reference ({'sentence-transformers' if use_st else 'transformers'}),"
        f" {len(SENTENCES)} sentences" + (f", {len(prompts.prompts)} prompt(s)" if prompts.prompts else ""))
    result = compare(work, reference.path, list(SENTENCES), pooling=pooling, max_length=source.max_length,
                     threshold=threshold, trust_remote_code=cfg.trust_remote_code, use_sentence_transformers=use_st,
                     prompts=prompts.prompts, own_prompts=_own_prompt_names(reference, prompts), head=head)
    log(f"  min cosine {result.min_cosine:.6f} (threshold {threshold})")
    if result.tokenizer_mismatches:
        log(f"  warning: openvino_tokenizer.xml differs from the HF tokenizer on {len(result.tokenizer_mismatches)}"
            f" of {len(SENTENCES)} sentences (ovembed serves with tokenizer.json; OVMS uses the IR)")
    if not result.passed:
        raise ExportError("verification failed, nothing was written:\n" + result.summary())
    return {"min_cosine": result.min_cosine, "threshold": threshold, "texts": len(result.texts),
            "tokenizer_ir_mismatches": len(result.tokenizer_mismatches)}


def build_from_ir(cfg: ExportConfig, source: SourceModel, pooling: Pooling, prompts: PromptSet, work: Path,
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
    from ovembed.export.st_head import read_head

    head = read_head(source.path, pooling, cfg.pooling is not None, not cfg.skip_normalize, log)
    record.update(_head_record(head, source, work), route="openvino-ir")
    reference_path = None if cfg.skip_verify else ir_source.resolve_reference(
        cfg.reference_model, source.path, revision=None, token=cfg.hf_token, quiet=cfg.quiet)
    if reference_path is not None:
        require_export_stack()
        quiet_libraries()
        reference = source if reference_path == source.path else inspect_source(str(reference_path))
        from ovembed.export.verify import DEFAULT_MIN_COSINE

        threshold = cfg.min_cosine if cfg.min_cosine is not None else DEFAULT_MIN_COSINE[weight_format]
        record["verification"] = _verify(cfg, source, reference, pooling, prompts, threshold, work, log, head)
        record["reference_model"] = cfg.reference_model or cfg.source_model
    elif not cfg.skip_verify:
        log("not verified: the source holds no PyTorch weights; pass --reference_model ORG/NAME to compare "
            "the IR with its PyTorch model")
    atomic_write_text(work / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
    return record, weight_format
