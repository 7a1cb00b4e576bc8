"""`ovembed export --task sparse`: a SPLADE-style masked LM (``*ForMaskedLM``) as optimum-intel's
``fill-mask`` IR (logits ``[batch, seq, vocab]``), NNCF weight compression, the HF tokenizer and an
OpenVINO tokenizer IR, verified against the PyTorch masked LM with the SPLADE head
(:mod:`ovembed.export.verify_sparse`). The head itself (:mod:`ovembed.heads.sparse`) is appended in-graph
when serving and verifying, as pooling is for embeddings models.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ovembed.errors import ExportError
from ovembed.hf_files import read_json_object

if TYPE_CHECKING:
    from ovembed.config import ExportConfig
    from ovembed.export.quantize import QuantizationParams
    from ovembed.export.source import SourceModel
    from ovembed.prompts import PromptSet

Log = Callable[[str], None]


def check_masked_lm(source: SourceModel) -> int:
    """Refuse, before any work, models that are not masked LMs; the vocabulary size otherwise."""
    config = read_json_object(source.path / "config.json")
    architectures = [str(a) for a in config.get("architectures") or []]
    if not any(a.endswith("ForMaskedLM") for a in architectures):
        found = ", ".join(architectures) or "none declared"
        raise ExportError(f"--task sparse needs a SPLADE-style masked language model (a *ForMaskedLM model); "
                          f"{source.path} has architectures: {found}")
    vocab = config.get("vocab_size")
    if not isinstance(vocab, int) or vocab < 1:
        raise ExportError(f"{source.path}/config.json has no vocab_size")
    return vocab


def build_sparse(cfg: ExportConfig, source: SourceModel, params: QuantizationParams, prompts: PromptSet,
                 work: Path, log: Log, versions: dict[str, str]) -> dict[str, Any]:
    """Everything that produces a sparse model folder's content, inside ``work``; the record."""
    from ovembed.export.convert import convert_to_ir
    from ovembed.export.quantize import compress_and_save
    from ovembed.export.tokenizer import export_tokenizer, load_hf_tokenizer
    from ovembed.export.verify import SENTENCES
    from ovembed.export.verify_sparse import DEFAULT_MAX_VALUE_DIFF, DEFAULT_MIN_TOPK_AGREEMENT, compare_sparse

    vocab = check_masked_lm(source)
    t0 = time.perf_counter()
    log(f"converting {source.path} with optimum-intel (task fill-mask)")
    xml = convert_to_ir(source, work, trust_remote_code=cfg.trust_remote_code, task="fill-mask")
    log(f"  converted in {time.perf_counter() - t0:.1f}s")
    t1 = time.perf_counter()
    applied = compress_and_save(xml, cfg.weight_format, params)
    log(f"  weights {cfg.weight_format.value} in {time.perf_counter() - t1:.1f}s")
    tok = load_hf_tokenizer(source.path, max_length=source.max_length, trust_remote_code=cfg.trust_remote_code)
    export_tokenizer(tok, work)
    record: dict[str, Any] = {
        "task": "sparse",
        "source_model": cfg.source_model,
        "source_path": str(source.path),
        "model_type": source.model_type,
        "sparse_head": {"activation": "log1p_relu", "pooling": "max"},
        "dimensions": vocab,
        "weight_format": cfg.weight_format.value,
        "quantization": {**applied, **params.describe()},
        "max_length": source.max_length,
        "max_length_origin": source.max_length_origin,
        "prompts": dict(prompts.prompts),
        "default_prompt_name": prompts.default_name,
        "versions": versions,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if source.hub is not None:
        record.update(source_revision=source.hub.revision or "main", source_commit=source.hub.commit)
    if not cfg.skip_verify:
        max_diff = cfg.max_value_diff if cfg.max_value_diff is not None else DEFAULT_MAX_VALUE_DIFF[cfg.weight_format]
        min_agree = DEFAULT_MIN_TOPK_AGREEMENT[cfg.weight_format]
        texts = list(SENTENCES)
        log(f"verifying against the PyTorch masked LM with the SPLADE head, {len(texts)} sentences")
        result = compare_sparse(work, source.path, texts, max_length=source.max_length, max_diff=max_diff,
                                min_agreement=min_agree, trust_remote_code=cfg.trust_remote_code)
        log(f"  max relative value difference {result.max_diff:.6f} (threshold {max_diff}), "
            f"top-k agreement {result.topk_agreement:.3f} (threshold {min_agree})")
        if not result.passed:
            raise ExportError("verification failed, nothing was written:\n" + result.summary())
        record["verification"] = {"max_value_diff": result.max_diff, "threshold": max_diff,
                                  "topk_agreement": result.topk_agreement, "min_topk_agreement": min_agree,
                                  "texts": len(texts)}
    return record
