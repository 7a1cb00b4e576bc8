"""Compare an exported bge_m3 IR (three outputs) with the PyTorch recipe FlagEmbedding publishes: ``AutoModel``
``last_hidden_state`` -> dense = normalize(CLS); sparse = relu(sparse_linear(h)) per token, max per token id, the
special tokens dropped; colbert = normalize(colbert_linear(h[:, 1:])) for the real tokens. The numbers: the
smallest dense cosine, the smallest colbert per-token cosine, the largest sparse weight difference over the union of
token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ovembed.config import WeightFormat
from ovembed.heads.bge_m3 import COLBERT, DENSE, SPARSE, Heads, lexical_weights

DEFAULT_MIN_COSINE = {WeightFormat.FP32: 0.9999, WeightFormat.FP16: 0.999, WeightFormat.INT8: 0.98,
                      WeightFormat.INT4: 0.9}
DEFAULT_MAX_SPARSE_DIFF = {WeightFormat.FP32: 1e-3, WeightFormat.FP16: 1e-2, WeightFormat.INT8: 0.1,
                           WeightFormat.INT4: 0.3}


@dataclass
class M3Comparison:
    min_cosine: float
    max_sparse_diff: float
    dense: list[float] = field(default_factory=list)  # per text
    colbert: list[float] = field(default_factory=list)  # per text: the smallest per-token cosine
    sparse: list[float] = field(default_factory=list)  # per text: the largest weight difference

    @property
    def dense_min_cosine(self) -> float:
        return min(self.dense, default=1.0)

    @property
    def colbert_min_cosine(self) -> float:
        return min(self.colbert, default=1.0)

    @property
    def sparse_max_diff(self) -> float:
        return max(self.sparse, default=0.0)

    @property
    def passed(self) -> bool:
        return (min(self.dense_min_cosine, self.colbert_min_cosine) >= self.min_cosine
                and self.sparse_max_diff <= self.max_sparse_diff)

    def summary(self) -> str:
        return (f"min dense cosine {self.dense_min_cosine:.6f}, min colbert cosine {self.colbert_min_cosine:.6f} "
                f"(threshold {self.min_cosine}); max sparse difference {self.sparse_max_diff:.6f} (threshold "
                f"{self.max_sparse_diff}) -> {'PASS' if self.passed else 'FAIL'}")


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12))


def _sparse_diff(ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> float:
    ids = np.union1d(ref[0], got[0])
    r = np.zeros(len(ids), dtype=np.float32)
    g = np.zeros(len(ids), dtype=np.float32)
    r[np.searchsorted(ids, ref[0])] = ref[1]
    g[np.searchsorted(ids, got[0])] = got[1]
    return float(np.abs(r - g).max(initial=0.0))


def reference_outputs(hidden: np.ndarray, heads: Heads) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three heads in numpy over ``hidden`` [B, S, H]: dense [B, H], token weights [B, S], colbert [B, S-1, D]."""
    def normalized(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        return x @ w.T + (0.0 if b is None else b)

    hidden = hidden.astype(np.float32)
    weights = np.maximum(linear(hidden, heads.sparse_weight, heads.sparse_bias), 0.0)[..., 0]
    return (normalized(hidden[:, 0]), weights,
            normalized(linear(hidden[:, 1:], heads.colbert_weight, heads.colbert_bias)))


def compare_m3(model_dir: Path, source: Path, texts: Sequence[str], heads: Heads, unused: Sequence[int], *,
               max_length: int, min_cosine: float, max_sparse_diff: float,
               trust_remote_code: bool) -> M3Comparison:
    """The IR in ``model_dir`` against ``source``'s encoder with ``heads``."""
    import openvino as ov
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    encoder = AutoModel.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    encoder.eval()
    compiled = ov.Core().compile_model(str(model_dir / "openvino_model.xml"), "CPU",
                                       {"INFERENCE_PRECISION_HINT": "f32"})
    names = {name for port in compiled.inputs for name in port.get_names()}
    out = M3Comparison(min_cosine, max_sparse_diff)
    for start in range(0, len(texts), 8):
        enc = tok(list(texts[start:start + 8]), truncation=True, max_length=max_length, padding=True,
                  return_tensors="pt")
        with torch.inference_mode():
            hidden = encoder(**enc).last_hidden_state.float().numpy()
        r_dense, r_weights, r_colbert = reference_outputs(hidden, heads)
        result = compiled({k: v.numpy() for k, v in enc.items() if k in names})
        g_dense, g_weights, g_colbert = (np.asarray(result[compiled.output(n)], dtype=np.float32)
                                         for n in (DENSE, SPARSE, COLBERT))
        ids = enc["input_ids"].numpy()
        lengths = enc["attention_mask"].numpy().sum(axis=1)
        out.dense.extend(_cos(r_dense, g_dense).tolist())
        for row, n in enumerate(lengths):
            out.colbert.append(float(_cos(r_colbert[row, :n - 1], g_colbert[row, :n - 1]).min(initial=1.0)))
            out.sparse.append(_sparse_diff(lexical_weights(ids[row, :n], r_weights[row, :n], unused),
                                           lexical_weights(ids[row, :n], g_weights[row, :n], unused)))
    return out
