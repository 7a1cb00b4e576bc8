"""Compare an exported token-vector IR (projection and normalisation in it) with the PyTorch recipe, per token:
``AutoModel`` ``last_hidden_state`` -> the model's ``Dense`` projection -> L2 normalisation
(:func:`ovembed.heads.token_embed.reference_token_vectors`), the pylate/ColBERT formula. The number: the smallest
cosine between a reference token vector and the exported one, over every real (non-padding) token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ovembed.config import WeightFormat

DEFAULT_MIN_COSINE = {
    WeightFormat.FP32: 0.9999,
    WeightFormat.FP16: 0.999,
    WeightFormat.INT8: 0.98,
    WeightFormat.INT4: 0.9,
}


@dataclass
class TokenComparison:
    texts: list[str]
    cosines: list[np.ndarray]  # per text, per real token
    min_threshold: float

    @property
    def min_cosine(self) -> float:
        return float(min((c.min() for c in self.cosines if c.size), default=1.0))

    @property
    def tokens(self) -> int:
        return sum(int(c.size) for c in self.cosines)

    @property
    def passed(self) -> bool:
        return self.min_cosine >= self.min_threshold

    def summary(self) -> str:
        lines = [f"{'min cos':>9} {'tokens':>6}  text"]
        for text, cos in zip(self.texts, self.cosines, strict=True):
            short = text.replace("\n", " ")
            lines.append(f"{float(cos.min()) if cos.size else 1.0:9.6f} {cos.size:6d}  {short[:60]}")
        lines.append(f"min per-token cosine {self.min_cosine:.6f} (threshold {self.min_threshold}) over "
                     f"{self.tokens} tokens -> {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def compare_tokens(model_dir: Path, source: Path, texts: Sequence[str], weight: np.ndarray, bias: np.ndarray | None,
                   *, max_length: int, min_cosine: float, trust_remote_code: bool) -> TokenComparison:
    """The IR in ``model_dir`` against ``source``'s encoder and the projection ``weight`` [dim, hidden], ``bias``."""
    import openvino as ov
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ovembed.heads.token_embed import add_token_head, reference_token_vectors

    tok = AutoTokenizer.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    encoder = AutoModel.from_pretrained(str(source), trust_remote_code=trust_remote_code)
    encoder.eval()
    core = ov.Core()
    compiled = core.compile_model(add_token_head(core.read_model(model_dir / "openvino_model.xml")), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    names = {name for port in compiled.inputs for name in port.get_names()}
    cosines: list[np.ndarray] = []
    for start in range(0, len(texts), 8):
        enc = tok(list(texts[start:start + 8]), truncation=True, max_length=max_length, padding=True,
                  return_tensors="pt")
        with torch.inference_mode():
            hidden = encoder(**enc).last_hidden_state.float().numpy()
        ref = reference_token_vectors(hidden, weight, bias)
        got = np.asarray(compiled({k: v.numpy() for k, v in enc.items() if k in names})[0], dtype=np.float32)
        mask = enc["attention_mask"].numpy().astype(bool)
        for row in range(len(mask)):
            r, g = ref[row][mask[row]], got[row][mask[row]]
            cosines.append((r * g).sum(-1) / np.maximum(np.linalg.norm(r, axis=-1) * np.linalg.norm(g, axis=-1),
                                                          1e-12))
    return TokenComparison(list(texts), cosines, min_cosine)
