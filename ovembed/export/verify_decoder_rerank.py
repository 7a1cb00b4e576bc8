"""Compare an exported decoder reranker with its model card's transformers recipe (Qwen3-Reranker's):
``AutoModelForCausalLM``, left padding, ``prefix + tokenizer(format(instruction, query, doc), truncated) +
suffix``, the last position's logits of "no" and "yes" -> log_softmax -> exp of "yes".

The exported side is fed what the server feeds it: the ids of
:class:`~ovembed.serving.tasks.template_chunker.TemplateChunker` (one window per pair, as the recipe
truncates), so the check covers the server-side template as well as the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.export.task import require_passed
from ovembed.export.verify_rerank import (
    DEFAULT_MAX_SCORE_DIFF,
    DEFAULT_MIN_RANK_AGREEMENT,
    Pair,
    ScoreComparison,
    builtin_pairs,
)
from ovembed.heads.rerank import ACTIVATED, RerankHead
from ovembed.rerank_template import RerankTemplate

if TYPE_CHECKING:
    from ovembed.config import ExportConfig, WeightFormat
    from ovembed.export.common import Log


def recipe_scores(source: Path, pairs: Sequence[Pair], template: RerankTemplate, *, max_length: int,
                  instruction: str | None = None, trust_remote_code: bool = False, seq_cls: bool = False) -> np.ndarray:
    """P(yes) per pair by the model card's recipe (a seq-cls copy: the sigmoid of its one logit, same inputs)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source), padding_side="left", trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    auto = AutoModelForSequenceClassification if seq_cls else AutoModelForCausalLM
    model = auto.from_pretrained(str(source), trust_remote_code=trust_remote_code, dtype=torch.float32).eval()
    yes, no = tok.convert_tokens_to_ids(template.yes_token), tok.convert_tokens_to_ids(template.no_token)
    prefix = tok.encode(template.prefix, add_special_tokens=False)
    suffix = tok.encode(template.suffix, add_special_tokens=False)
    out = []
    for start in range(0, len(pairs), 8):
        chunk = pairs[start:start + 8]
        texts = [template.middle(q, d, instruction) for q, d in chunk]
        inputs = tok(texts, padding=False, truncation="longest_first", return_attention_mask=False,
                     max_length=max_length - len(prefix) - len(suffix))
        inputs["input_ids"] = [prefix + ids + suffix for ids in inputs["input_ids"]]
        batch = tok.pad(inputs, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits
        if seq_cls:
            out.append(torch.sigmoid(logits[:, 0]).float().numpy())
            continue
        logits = logits[:, -1, :]
        pair = torch.nn.functional.log_softmax(torch.stack([logits[:, no], logits[:, yes]], dim=1), dim=1)
        out.append(pair[:, 1].exp().float().numpy())
    return np.concatenate(out) if out else np.empty(0, dtype=np.float32)


def exported_scores(model_dir: Path, pairs: Sequence[Pair], *, head: RerankHead, template: RerankTemplate,
                    max_length: int, instruction: str | None = None) -> np.ndarray:
    """Scores of the IR in ``model_dir`` fed the server's template ids (left padded)."""
    import openvino as ov

    from ovembed.heads.rerank import add_rerank_head
    from ovembed.serving.tasks.template_chunker import TemplateChunker

    chunker = TemplateChunker((model_dir / "tokenizer.json").read_text(encoding="utf-8"), max_length=max_length,
                              template=template)
    core = ov.Core()
    model = add_rerank_head(core.read_model(model_dir / "openvino_model.xml"), head)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    names = {name for port in compiled.inputs for name in port.get_names()}
    out = []
    for start in range(0, len(pairs), 8):
        chunk = pairs[start:start + 8]
        ids = [chunker.chunk(q, [d], truncate=True, instruction=instruction).ids[0] for q, d in chunk]
        feed = _left_padded(ids, names)
        out.append(np.asarray(compiled(feed)[0], dtype=np.float32)[:, ACTIVATED])
    return np.concatenate(out) if out else np.empty(0, dtype=np.float32)


def _left_padded(ids: list[list[int]], names: set[str]) -> dict[str, Any]:
    width = max(len(x) for x in ids)
    input_ids = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, row in enumerate(ids):
        input_ids[i, width - len(row):] = row
        mask[i, width - len(row):] = 1
    feed: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
    if "position_ids" in names:
        feed["position_ids"] = np.broadcast_to(np.arange(width, dtype=np.int64), input_ids.shape).copy()
    return {k: v for k, v in feed.items() if k in names}


def verify_decoder_scores(cfg: ExportConfig, work: Path, reference: Path, head: RerankHead, template: RerankTemplate,
                          max_length: int, weight_format: WeightFormat, log: Log, *,
                          seq_cls: bool = False) -> dict[str, Any]:
    """Compare the IR in ``work`` with the recipe on ``reference``; raise when it fails; the record's
    ``verification``."""
    max_diff = cfg.max_score_diff if cfg.max_score_diff is not None else DEFAULT_MAX_SCORE_DIFF[weight_format]
    min_agree = (cfg.min_rank_agreement if cfg.min_rank_agreement is not None
                 else DEFAULT_MIN_RANK_AGREEMENT[weight_format])
    pairs = builtin_pairs()
    log(f"verifying against the model card's transformers recipe (causal LM, yes/no logits), {len(pairs)} "
        "(query, document) pairs")
    ref = recipe_scores(reference, pairs, template, max_length=max_length, trust_remote_code=cfg.trust_remote_code,
                        seq_cls=seq_cls)
    got = exported_scores(work, pairs, head=head, template=template, max_length=max_length)
    result = ScoreComparison(list(pairs), ref, got, max_diff, min_agree)
    log(f"  max score difference {result.max_diff:.6f} (threshold {max_diff}), "
        f"rank agreement {result.rank_agreement:.3f} (threshold {min_agree})")
    require_passed(result)
    return {"max_score_diff": result.max_diff, "threshold": max_diff, "rank_agreement": result.rank_agreement,
            "min_rank_agreement": min_agree, "pairs": len(pairs), "reference": "transformers recipe"}


def compare_decoder_folder(model_dir: Path, source: Path, pairs: Sequence[Pair], record: dict[str, object], *,
                           max_length: int, max_diff: float, min_agreement: float,
                           trust_remote_code: bool) -> ScoreComparison:
    """`ovembed compare` on a decoder rerank folder: its recorded template and head against the recipe."""
    from ovembed.errors import ExportError

    try:
        template = RerankTemplate.from_record(record.get("rerank_template"))
        head = RerankHead.from_record(record.get("rerank_head"), num_labels=1)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{model_dir}: {exc}") from None
    decoder = record.get("decoder_head")
    seq_cls = isinstance(decoder, dict) and decoder.get("yes_token_id") is None
    ref = recipe_scores(source, pairs, template, max_length=max_length, trust_remote_code=trust_remote_code,
                        seq_cls=seq_cls)
    got = exported_scores(model_dir, pairs, head=head, template=template, max_length=max_length)
    return ScoreComparison(list(pairs), ref, got, max_diff, min_agreement)
