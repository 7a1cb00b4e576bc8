"""Rerank throughput: one query x N documents per request, ovembed serve (HTTP) vs sentence-transformers'
CrossEncoder (PyTorch, in-process), fp32 and int8, in one run on one machine.

Two cross-encoders, both built offline: the tiny random BERT one from tests/tiny_models.py, and one
made of the packaged all-MiniLM-L6-v2 encoder weights with a random one-logit head (its scores are
meaningless; its shapes, hence its speed, are a real MiniLM cross-encoder's). Each is exported at fp32
and int8 into one repository and served by one ``ovembed serve``; every request is the same query
against ``--docs`` synthetic documents of ``--words`` words. Pairs/s = documents/s; tokens/s counts
the tokens of every (query, document) pair the model ran (server-reported for ovembed, the
CrossEncoder tokenizer's count for PyTorch).

    .venv/bin/python -m benchmarks.rerank_throughput [--docs 100] [--requests 10] [--words 40]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.harness import export, machine_busy_seconds, minilm_source, start_server
from ovembed.benchmark import measure
from ovembed.benchmark.client import RERANK_QUERY
from ovembed.benchmark.dataset import synthetic_documents
from ovembed.benchmark.stats import summarize
from ovembed.config import BenchmarkConfig, Task

RANDOM_HEAD_INT8_MAX_SCORE_DIFF = 0.15


def _sources(root: Path) -> dict[str, Path]:
    from tests.tiny_models import build_bert_reranker, build_cross_encoder_from

    return {"tiny-bert": build_bert_reranker(root / "tiny-bert"),
            "minilm-ce": build_cross_encoder_from(minilm_source(), root / "minilm-ce")}


def _crossencoder(source: Path, docs: list[str], requests: int) -> tuple[float, float]:
    """(pairs/s, tokens/s) of CrossEncoder.predict on the same requests, in this process."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(source), device="cpu")
    pairs = [(RERANK_QUERY, d) for d in docs]
    tokens = sum(len(ids) for ids in model.tokenizer([q for q, _ in pairs], [d for _, d in pairs], truncation=True,
                                                     max_length=model.max_length)["input_ids"])
    model.predict(pairs, batch_size=32, show_progress_bar=False)  # warm-up
    start = time.perf_counter()
    for _ in range(requests):
        model.predict(pairs, batch_size=32, show_progress_bar=False)
    seconds = time.perf_counter() - start
    return len(pairs) * requests / seconds, tokens * requests / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100, help="documents per request (one query)")
    parser.add_argument("--requests", type=int, default=10, help="measured requests per row")
    parser.add_argument("--words", type=int, default=40, help="words per synthetic document")
    args = parser.parse_args()
    docs = synthetic_documents(args.docs, args.words, seed=1)
    rows: list[tuple[str, str, float, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="ovembed-rerank-bench-") as tmp:
        root = Path(tmp)
        sources = _sources(root / "src")
        repo = root / "repo"
        for name, source in sources.items():
            for fmt in ("fp32", "int8"):
                # Random heads (both models here) give int8 score errors a real cross-encoder does not,
                # more so where OpenVINO also quantizes activations dynamically (VNNI/AMX CPUs):
                # the MiniLM one measured 0.065 against the 0.06 default on a Xeon with AMX.
                loose = ("--max_score_diff", str(RANDOM_HEAD_INT8_MAX_SCORE_DIFF)) if fmt == "int8" else ()
                export(repo, "--task", "rerank", "--weight_format", fmt, *loose, source=source,
                       model_name=f"{name}-{fmt}")
        busy_before = machine_busy_seconds()
        wall_before = time.perf_counter()
        with start_server(repo / "config.json", root / "server.log") as server:
            for name in sources:
                for fmt in ("fp32", "int8"):
                    cfg = BenchmarkConfig(api_url=f"{server.base_url}/v3/rerank", task=Task.RERANK,
                                          model=f"{name}-{fmt}", batch_size=args.docs, limit=args.docs * args.requests,
                                          warmup=2)
                    summary = summarize(measure(cfg, docs * args.requests, progress=False))
                    assert summary.requests_ok == summary.requests, summary.failures
                    rows.append((name, f"ovembed {fmt}", summary.throughput_docs_per_s,
                                 summary.throughput_tokens_per_s, summary.latency_ms.median, summary.latency_ms.p99))
        for name, source in sources.items():
            pairs_s, tokens_s = _crossencoder(source, docs, args.requests)
            per_request_ms = 1000 * args.docs / pairs_s
            rows.append((name, "CrossEncoder fp32 (torch)", pairs_s, tokens_s, per_request_ms, float("nan")))
        wall = time.perf_counter() - wall_before
        others = (machine_busy_seconds() - busy_before) / wall if wall > 0 else 0.0
    print(f"1 query x {args.docs} documents (~{args.words} words) per request, {args.requests} requests per row; "
          f"torch threads {__import__('torch').get_num_threads()}, cpu count {os.cpu_count()}")
    print(f"machine CPU use during the run (all processes, cores): {others:.2f}")
    print(f"{'model':<10} {'engine':<26} {'pairs/s':>9} {'tokens/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for name, engine, pairs_s, tokens_s, p50, p99 in rows:
        print(f"{name:<10} {engine:<26} {pairs_s:9.1f} {tokens_s:10.0f} {p50:8.1f} {p99:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
