"""How much a vector depends on its batch, per inference precision (f32 vs bf16).

Loads the packaged all-MiniLM-L6-v2 (exported at fp32 into a temporary repository, or
``--model_dir``) once per precision and embeds 24 texts alone, then each of them 20 times among
23 random other documents at a random position (what 24 concurrent clients produce). Prints the
largest absolute difference and the smallest cosine between "alone" and "batched".

    .venv/bin/python -m benchmarks.batch_invariance
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.harness import MODEL_NAME, export
from ovembed.benchmark.dataset import synthetic_documents
from ovembed.config import ServeConfig


def _pad(docs: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(d) for d in docs)
    ids = np.full((len(docs), width), pad_id, dtype=np.int64)
    for row, doc in enumerate(docs):
        ids[row, : len(doc)] = doc
    mask = (np.arange(width) < np.array([len(d) for d in docs])[:, None]).astype(np.int64)
    return ids, mask


def measure(model_dir: Path, precision: str, trials: int, seed: int = 0) -> tuple[float, float]:
    import openvino as ov

    from ovembed.serving.openvino.loader import load_model

    loaded = load_model(ov.Core(), "minilm", model_dir, ServeConfig(inference_precision=precision))
    tok, engine = loaded.tokenizer, loaded.engine
    docs = [list(d) for d in tok.encode_texts(synthetic_documents(24, 40, seed=1), truncate=True)]
    others = [list(d) for d in tok.encode_texts(synthetic_documents(200, 60, seed=2), truncate=True)]
    alone = np.stack([engine.infer(*_pad([d], tok.pad_id))[0] for d in docs])
    rng = np.random.default_rng(seed)
    worst, lowest = 0.0, 1.0
    for _ in range(trials):
        for i, doc in enumerate(docs):
            batch = [others[j] for j in rng.choice(len(others), 23, replace=False)]
            at = int(rng.integers(0, 24))
            vector = engine.infer(*_pad([*batch[:at], doc, *batch[at:]], tok.pad_id))[at]
            worst = max(worst, float(np.abs(vector - alone[i]).max()))
            lowest = min(lowest, float(vector @ alone[i] / np.linalg.norm(vector) / np.linalg.norm(alone[i])))
    engine.close()
    return worst, lowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", type=Path, help="an exported fp32 MiniLM folder (default: export one)")
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or export(Path(tmp)).parent / MODEL_NAME
        for precision in ("f32", "bf16"):
            worst, lowest = measure(model_dir, precision, args.trials)
            print(f"{precision:>4}: max abs diff {worst:.2e}, min cosine {lowest:.6f}")


if __name__ == "__main__":
    main()
