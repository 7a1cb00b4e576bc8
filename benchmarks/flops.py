"""How close to the machine's limit: float32 GEMM rate and a transformer encoder's FLOPs.

The model's work is counted on real tokens only (no padding, after truncation):

    FLOPs(document of L tokens) = L * 2 * P  +  4 * layers * L^2 * hidden

where P is the number of non-embedding parameters (every weight takes part in one
multiply-add per token) and the second term is attention's QK^T and AV products, each
2 * L * hidden per token per layer. Embedding look-ups, softmax, GELU and layer norms are
left out, so the count is slightly low (the fraction of the GEMM rate is conservative).
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GemmRate:
    flops_per_s: float
    size: int
    threads: str
    library: str

    def describe(self) -> str:
        return (f"float32 GEMM {self.size}x{self.size} ({self.library}, {self.threads}): "
                f"{self.flops_per_s / 1e9:.1f} GFLOP/s")


def measure_gemm(size: int = 2048, repeats: int = 10) -> GemmRate:
    """Best-of-``repeats`` rate of a square float32 matmul with numpy on all cores."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm up: threads started, pages touched
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    library, threads = _blas()
    return GemmRate(2.0 * size**3 / best, size, threads, library)


def _blas() -> tuple[str, str]:
    """(library, threads) of numpy's BLAS, from threadpoolctl when it is installed."""
    try:
        info = importlib.import_module("threadpoolctl").threadpool_info()
    except ImportError:
        return "numpy BLAS", f"{os.cpu_count()} cores"
    blas = [i for i in info if i.get("user_api") == "blas"]
    if not blas:
        return "numpy BLAS", f"{os.cpu_count()} cores"
    name = f"{blas[0]['internal_api']} {blas[0].get('version', '')}".strip()
    return name, f"{blas[0]['num_threads']} threads"


@dataclass(frozen=True)
class EncoderShape:
    layers: int
    hidden: int
    intermediate: int
    max_length: int  # the tokens a document is truncated to

    @classmethod
    def from_folder(cls, folder: Path) -> EncoderShape:
        """BERT-style ``config.json``; the length limit from sentence_bert_config.json."""
        config = json.loads((folder / "config.json").read_text())
        limit = config.get("max_position_embeddings", 512)
        st_config = folder / "sentence_bert_config.json"
        if st_config.exists():
            limit = json.loads(st_config.read_text()).get("max_seq_length", limit)
        return cls(config["num_hidden_layers"], config["hidden_size"],
                   config["intermediate_size"], int(limit))

    @property
    def parameters(self) -> int:
        """Non-embedding parameters: attention, feed-forward and layer norms (no pooler)."""
        h, i = self.hidden, self.intermediate
        attention = 4 * (h * h + h)
        feed_forward = h * i + i + i * h + h
        norms = 2 * 2 * h
        return self.layers * (attention + feed_forward + norms)

    def document_flops(self, tokens: int) -> float:
        return tokens * 2.0 * self.parameters + 4.0 * self.layers * tokens**2 * self.hidden

    def flops(self, lengths: Iterable[int]) -> float:
        return sum(self.document_flops(n) for n in lengths)

    def describe(self) -> str:
        return (f"{self.layers} layers, hidden {self.hidden}, {self.parameters / 1e6:.2f} M "
                f"non-embedding parameters: FLOPs/token = {2 * self.parameters / 1e6:.2f} M + "
                f"{4 * self.layers * self.hidden} x length; max length {self.max_length}")
