"""Recall of MUVERA pre-filter + MaxSim rerank against exact MaxSim, on a generated retrieval set.

The set (seeded, numpy only, no model): ``--topics`` unit "topic" vectors; each document mixes 2-5 topics and
has 20-80 token vectors, each a topic plus noise, normalised (as ColBERT's are). Each query takes 3 topics of
one document and has 8-32 tokens drawn the same way, so it has true neighbours (the documents sharing its
topics). Exact: the top ``--k`` documents by MaxSim over all documents. MUVERA: the top ``N`` documents by FDE
dot product (query FDE: sums; document FDEs: averages with empty partitions filled), reranked by MaxSim; its
recall@k is the share of the exact top k found. "FDE only" ranks by the FDE dot product alone.

    .venv/bin/python -m benchmarks.muvera_recall                  # default settings, ~1 minute
    .venv/bin/python -m benchmarks.muvera_recall --docs 500 --queries 50 --settings 4,16,20 --candidates 50
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ovembed.heads.muvera import Muvera, MuveraParams
from ovembed.heads.token_embed import maxsim

DEFAULT_SETTINGS = ("3,8,10", "4,16,20", "5,16,20", "6,16,10")  # k_sim,dim_proj,r_reps (5,16,20: the defaults)


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.linalg.norm(rows, axis=-1, keepdims=True), dtype=np.float32)


def _tokens(rng: np.random.Generator, topics: np.ndarray, chosen: np.ndarray, n: int, noise: float) -> np.ndarray:
    dim = topics.shape[1]
    return _unit(topics[rng.choice(chosen, size=n)] + noise * rng.standard_normal((n, dim)))


def make_set(docs: int, queries: int, dim: int, n_topics: int, noise: float,
             seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    topics = _unit(rng.standard_normal((n_topics, dim)))
    doc_topics = [rng.choice(n_topics, size=rng.integers(2, 6), replace=False) for _ in range(docs)]
    corpus = [_tokens(rng, topics, t, int(rng.integers(20, 81)), noise) for t in doc_topics]
    asked = []
    for target in rng.choice(docs, size=queries, replace=False):
        chosen = rng.choice(doc_topics[target], size=min(3, len(doc_topics[target])), replace=False)
        asked.append(_tokens(rng, topics, chosen, int(rng.integers(8, 33)), noise))
    return corpus, asked


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.muvera_recall", description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--dim", type=int, default=128, help="dimensions per token vector (ColBERT's 128)")
    parser.add_argument("--topics", type=int, default=300)
    parser.add_argument("--noise", type=float, default=0.08, help="per-coordinate noise around a topic")
    parser.add_argument("--k", type=int, default=10, help="recall@k")
    parser.add_argument("--candidates", default="50,100,200", help="MUVERA pre-filter sizes N, comma-separated")
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS), help="k_sim,dim_proj,r_reps ...")
    parser.add_argument("--seed", type=int, default=0, help="the data set's seed (MUVERA uses its default 42)")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.candidates.split(",")]

    corpus, queries = make_set(args.docs, args.queries, args.dim, args.topics, args.noise, args.seed)
    exact = [np.argsort(-maxsim(q, corpus), kind="stable")[:args.k] for q in queries]
    tokens = sum(len(d) for d in corpus)
    print(f"{args.docs} documents ({tokens} token vectors, {tokens * args.dim * 4 / 2**20:.1f} MiB float32), "
          f"{args.queries} queries, dim {args.dim}; recall@{args.k} against exact MaxSim over all documents")
    header = "| k_sim | dim_proj | r_reps | FDE floats | FDE only | " + " | ".join(
        f"top {n} + MaxSim" for n in sizes) + " | encode ms/doc |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for setting in args.settings:
        k_sim, dim_proj, r_reps = (int(x) for x in setting.split(","))
        m = Muvera(args.dim, MuveraParams(k_sim=k_sim, dim_proj=dim_proj, r_reps=r_reps))
        started = time.perf_counter()
        doc_fdes = m.encode_many(corpus, "document")
        per_doc = (time.perf_counter() - started) / len(corpus) * 1e3
        fde_only, reranked = [], {n: [] for n in sizes}
        for q, truth in zip(queries, exact, strict=True):
            order = np.argsort(-(doc_fdes @ m.encode(q, "query")), kind="stable")
            fde_only.append(len(np.intersect1d(order[:args.k], truth)) / args.k)
            for n in sizes:
                pool = order[:n]
                best = pool[np.argsort(-maxsim(q, [corpus[i] for i in pool]), kind="stable")[:args.k]]
                reranked[n].append(len(np.intersect1d(best, truth)) / args.k)
        cells = " | ".join(f"{np.mean(reranked[n]):.3f}" for n in sizes)
        print(f"| {k_sim} | {dim_proj} | {r_reps} | {m.output_dim} | {np.mean(fde_only):.3f} | {cells} | "
              f"{per_doc:.2f} |")


if __name__ == "__main__":
    main()
