"""`ovembed export --task rerank`: a cross-encoder (sequence classification, one logit) as OVMS's
``rerank_ov`` exports it: optimum-intel ``text-classification`` IR, NNCF weight compression,
the HF tokenizer (pair template kept) and an OpenVINO tokenizer IR without special tokens (what
OVMS's RerankCalculatorOV expects), verified against ``sentence_transformers.CrossEncoder``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovembed.errors import ExportError
from ovembed.heads.rerank import RerankHead, separator_for_token_types
from ovembed.hf_files import read_json_object

if TYPE_CHECKING:
    from ovembed.config import ExportConfig, WeightFormat
    from ovembed.export.quantize import QuantizationParams
    from ovembed.export.source import SourceModel

Log = Callable[[str], None]


def check_cross_encoder(source: SourceModel) -> None:
    """Refuse, before any work, models that are not one-logit sequence classifiers."""
    config = read_json_object(source.path / "config.json")
    architectures = [str(a) for a in config.get("architectures") or []]
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        found = ", ".join(architectures) or "none declared"
        raise ExportError(f"--task rerank needs a cross-encoder (a *ForSequenceClassification model); "
                          f"{source.path} has architectures: {found}")
    labels = config.get("id2label")
    num_labels = len(labels) if isinstance(labels, dict) else int(config.get("num_labels", 2))
    if num_labels != 1:
        raise ExportError(f"--task rerank needs a cross-encoder with one logit; {source.path} has {num_labels} "
                          "labels (a classifier, not a reranker)")


_ACTIVATION_PATHS = {"Sigmoid": "sigmoid", "Identity": "identity"}


def declared_activation(root: Path) -> str:
    """The CrossEncoder activation the folder declares (sentence-transformers keeps it in
    config.json or config_sentence_transformers.json); sigmoid, its default for one logit."""
    config = read_json_object(root / "config.json")
    st = config.get("sentence_transformers")
    path = (st.get("activation_fn") if isinstance(st, dict) else None) \
        or config.get("sbert_ce_default_activation_function") \
        or read_json_object(root / "config_sentence_transformers.json").get("activation_fn")
    if not path:
        return "sigmoid"
    name = _ACTIVATION_PATHS.get(str(path).rsplit(".", 1)[-1])
    if name is None:
        raise ExportError(f"{root} declares the CrossEncoder activation {path}; ovembed supports "
                          f"{', '.join(_ACTIVATION_PATHS)}")
    return name


def head_for(tok: Any, activation: str) -> RerankHead:
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ExportError("--task rerank needs a fast (tokenizer.json) tokenizer")
    if backend.num_special_tokens_to_add(True) <= backend.num_special_tokens_to_add(False):
        raise ExportError("the tokenizer has no pair template (query and document would run together); "
                          "a cross-encoder's tokenizer.json must define one")
    try:
        sep = separator_for_token_types(backend)
    except ValueError as exc:
        raise ExportError(f"unsupported pair template: {exc}") from None
    return RerankHead(label=0, activation=activation, sep_token_id=sep)  # type: ignore[arg-type]


def build_rerank(cfg: ExportConfig, source: SourceModel, params: QuantizationParams, work: Path,
                 log: Log, versions: dict[str, str]) -> dict[str, Any]:
    """Everything that produces a rerank model folder's content, inside ``work``; the record."""
    from ovembed.export.convert import convert_to_ir
    from ovembed.export.quantize import compress_and_save
    from ovembed.export.tokenizer import export_tokenizer, load_hf_tokenizer

    t0 = time.perf_counter()
    log(f"converting {source.path} with optimum-intel (task text-classification)")
    xml = convert_to_ir(source, work, trust_remote_code=cfg.trust_remote_code, task="text-classification")
    log(f"  converted in {time.perf_counter() - t0:.1f}s")
    t1 = time.perf_counter()
    applied = compress_and_save(xml, cfg.weight_format, params)
    log(f"  weights {cfg.weight_format.value} in {time.perf_counter() - t1:.1f}s")
    tok = load_hf_tokenizer(source.path, max_length=source.max_length, trust_remote_code=cfg.trust_remote_code)
    head = head_for(tok, declared_activation(source.path))
    export_tokenizer(tok, work, add_special_tokens=False)  # OVMS adds the pair's special tokens itself
    record: dict[str, Any] = {
        "task": "rerank",
        "source_model": cfg.source_model,
        "source_path": str(source.path),
        "model_type": source.model_type,
        "rerank_head": head.describe(),
        "max_doc_length": cfg.max_doc_length,
        "weight_format": cfg.weight_format.value,
        "quantization": {**applied, **params.describe()},
        "max_length": source.max_length,
        "max_length_origin": source.max_length_origin,
        "versions": versions,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not cfg.skip_verify:
        record["verification"] = verify_scores(cfg, work, source.path, head, source.max_length, cfg.weight_format, log)
    return record


def verify_scores(cfg: ExportConfig, work: Path, reference: Path, head: RerankHead, max_length: int,
                  weight_format: WeightFormat, log: Log) -> dict[str, Any]:
    """Compare the IR in ``work`` (plus ``head``) with the CrossEncoder ``reference``; raise when it
    fails; the record's ``verification``."""
    from ovembed.export.verify_rerank import (
        DEFAULT_MAX_SCORE_DIFF,
        DEFAULT_MIN_RANK_AGREEMENT,
        builtin_pairs,
        compare_scores,
    )

    max_diff = cfg.max_score_diff if cfg.max_score_diff is not None else DEFAULT_MAX_SCORE_DIFF[weight_format]
    min_agree = (cfg.min_rank_agreement if cfg.min_rank_agreement is not None
                 else DEFAULT_MIN_RANK_AGREEMENT[weight_format])
    pairs = builtin_pairs()
    log(f"verifying against sentence_transformers.CrossEncoder, {len(pairs)} (query, document) pairs")
    result = compare_scores(work, reference, pairs, head=head, max_length=max_length, max_diff=max_diff,
                            min_agreement=min_agree, trust_remote_code=cfg.trust_remote_code)
    log(f"  max score difference {result.max_diff:.6f} (threshold {max_diff}), "
        f"rank agreement {result.rank_agreement:.3f} (threshold {min_agree})")
    if not result.passed:
        raise ExportError("verification failed, nothing was written:\n" + result.summary())
    return {"max_score_diff": result.max_diff, "threshold": max_diff, "rank_agreement": result.rank_agreement,
            "min_rank_agreement": min_agree, "pairs": len(pairs)}


def build_rerank_from_ir(cfg: ExportConfig, source: SourceModel, work: Path,
                         log: Log) -> tuple[dict[str, Any], WeightFormat]:
    """A cross-encoder published as OpenVINO IR, used as it is; verified against a CrossEncoder reference
    when there is one (its own weights or ``--reference_model``)."""
    from ovembed.export import ir_source, require_export_stack
    from ovembed.export.common import hub_record, quiet_libraries, versions
    from ovembed.export.convert import IR_XML
    from ovembed.export.tokenizer import load_hf_tokenizer
    from ovembed.repository import RECORD_FILENAME, atomic_write_text

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
        "task": "rerank", "source_model": cfg.source_model, "source_path": str(source.path), **hub_record(source),
        "model_type": source.model_type, "rerank_head": head.describe(), "max_doc_length": cfg.max_doc_length,
        "weight_format": weight_format.value, "max_length": source.max_length,
        "max_length_origin": source.max_length_origin, "versions": versions(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
    reference = None if cfg.skip_verify else ir_source.resolve_reference(
        cfg.reference_model, source.path, revision=None, token=cfg.hf_token, quiet=cfg.quiet)
    if reference is not None:
        require_export_stack()
        quiet_libraries()
        record["verification"] = verify_scores(cfg, work, reference, head, source.max_length, weight_format, log)
        record["reference_model"] = cfg.reference_model or cfg.source_model
    elif not cfg.skip_verify:
        log("not verified: the source holds no PyTorch weights; pass --reference_model ORG/NAME to compare "
            "the IR with its CrossEncoder")
    atomic_write_text(work / RECORD_FILENAME, json.dumps(record, indent=2) + "\n")
    return record, weight_format
