"""Paired A/B of two ``ovembed serve`` processes running side by side on the same model.

A and B are two source trees (``--a_root``, ``--b_root``: e.g. a worktree of main and one of a
branch) and/or two sets of serve flags (``--a_flags``, ``--b_flags``). Both servers are up for
the whole run, so whatever else the machine does hits both alike:

- ``short``: one client alternates single ~5-token queries between A and B on kept-alive
  connections (``http.client``: little client overhead), A first on even rounds, B first on odd;
  prints each side's p50/p90/mean and the median of the paired differences B - A.
- ``health``: the same for ``GET /v2/health/live`` (HTTP alone, no model).
- ``queries``: varied single queries (3-15 words, about 5-20 tokens: their shapes change from
  query to query, which costs OpenVINO more than the tokens do), the same sequence to A and B, in
  blocks of ``--block`` queries per side (one side idle meanwhile: two servers' inferences
  interleaved one by one slow each other on 2 cores); pairs are adjacent blocks' p50s.
- ``docs`` / ``bulk``: the load generator scenarios of serve_vs_pytorch.py, run against A and B
  in turn (ABBA order over ``--rounds``); prints tokens/s per round and the median ratio B / A.

    .venv/bin/python -m benchmarks.paired_ab --config /tmp/ovembed-ceiling/repo-int8/config.json \\
        --a_root /work/wt/main-copy --b_root . --scenarios short,health,docs,bulk --rounds 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.flops import EncoderShape
from benchmarks.harness import MODEL_NAME, Server, minilm_source, start_server
from benchmarks.serve_vs_pytorch import SCENARIOS, _inputs, _lengths, run_server
from ovembed.benchmark.dataset import synthetic_documents

_ROOT = Path(__file__).resolve().parents[1]
_QUERY = json.dumps({"model": MODEL_NAME, "input": "how do I reset my password"}).encode()


def _request(connection: http.client.HTTPConnection, what: str, body: bytes = _QUERY) -> float:
    t0 = time.perf_counter()
    if what in ("short", "queries"):
        connection.request("POST", "/v3/embeddings", body, {"Content-Type": "application/json"})
    else:
        connection.request("GET", "/v2/health/live")
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - t0
    if response.status != 200:
        raise RuntimeError(f"{what}: HTTP {response.status}")
    return elapsed


def alternate(servers: Sequence[Server], what: str, n: int, rounds: int) -> dict[str, Any]:
    """``n`` requests per side per round, alternating A/B one by one."""
    connections = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=30) for s in servers]
    times: list[list[float]] = [[], []]
    try:
        for c in connections:
            for _ in range(20):
                _request(c, what)  # warm-up
        for r in range(rounds):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for _ in range(n):
                for side in order:
                    times[side].append(_request(connections[side], what))
    finally:
        for c in connections:
            c.close()
    a, b = (1000 * np.array(t) for t in times)
    return {"a_p50_ms": float(np.median(a)), "b_p50_ms": float(np.median(b)),
            "a_p90_ms": float(np.percentile(a, 90)), "b_p90_ms": float(np.percentile(b, 90)),
            "a_mean_ms": float(a.mean()), "b_mean_ms": float(b.mean()),
            "paired_diff_median_ms": float(np.median(b - a)),
            "b_faster_fraction": float(np.mean(b < a)), "n": len(a), "unit": "pairs"}


def query_bodies(n: int) -> list[bytes]:
    """``n`` different short queries, a seeded mix of 3-5 and 9-15 words."""
    texts = synthetic_documents(n // 2, 4, seed=1, punctuate=False) + \
        synthetic_documents(n - n // 2, 12, seed=2, punctuate=False)
    random.Random(3).shuffle(texts)
    return [json.dumps({"model": MODEL_NAME, "input": t}).encode() for t in texts]


def blocks(servers: Sequence[Server], n: int, rounds: int, block: int) -> dict[str, Any]:
    """``n`` varied queries per side per round, in blocks of ``block`` per side (ABAB..., BABA...
    on odd rounds); both sides get the same queries in the same order."""
    connections = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=30) for s in servers]
    bodies = query_bodies(n * rounds)
    times: list[list[float]] = [[], []]
    pairs: list[tuple[float, float]] = []
    try:
        for c in connections:
            for body in bodies[:20]:
                _request(c, "queries", body)  # warm-up
        for r in range(rounds):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for start in range(r * n, (r + 1) * n, block):
                chunk = bodies[start:start + block]
                got: list[list[float]] = [[], []]
                for side in order:
                    got[side] = [_request(connections[side], "queries", body) for body in chunk]
                    times[side] += got[side]
                pairs.append((float(np.median(got[0])), float(np.median(got[1]))))
    finally:
        for c in connections:
            c.close()
    a, b = (1000 * np.array(t) for t in times)
    diffs = 1000 * np.array([y - x for x, y in pairs])
    return {"a_p50_ms": float(np.median(a)), "b_p50_ms": float(np.median(b)),
            "a_p90_ms": float(np.percentile(a, 90)), "b_p90_ms": float(np.percentile(b, 90)),
            "a_mean_ms": float(a.mean()), "b_mean_ms": float(b.mean()),
            "paired_diff_median_ms": float(np.median(diffs)),
            "b_faster_fraction": float(np.mean(diffs < 0)), "n": len(pairs), "unit": "blocks"}


def loaded(servers: Sequence[Server], name: str, rounds: int, quick: bool, source: Path) -> dict[str, Any]:
    scenario = next(s for s in SCENARIOS if s.name == name)
    shape = EncoderShape.from_folder(source)
    docs = _inputs(scenario, quick, 0)
    lengths = _lengths(source, docs, shape.max_length)
    per_round: list[tuple[float, float]] = []
    cores: list[list[tuple[float, float]]] = [[], []]  # (server, load generator) cores used per run
    for r in range(rounds):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        rate = [0.0, 0.0]
        for side in order:
            row = run_server(servers[side], scenario, docs, lengths, shape, "float")
            rate[side] = row.tokens_per_s
            cores[side].append((row.cores, (row.client_cpu_s or 0.0) / row.wall_s))
        per_round.append((rate[0], rate[1]))
    ratios = [b / a for a, b in per_round]
    return {"tokens_per_s": per_round, "median_ratio_b_over_a": float(np.median(ratios)),
            "cores_server_client": cores,
            "a_median": float(np.median([a for a, _ in per_round])),
            "b_median": float(np.median([b for _, b in per_round]))}


def _which(root: Path) -> str:
    done = subprocess.run([sys.executable, "-c", "import ovembed; print(ovembed.__file__)"],
                          capture_output=True, text=True, cwd=root, check=True)
    return done.stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="repository config.json (model 'minilm')")
    parser.add_argument("--a_root", type=Path, default=_ROOT)
    parser.add_argument("--b_root", type=Path, default=_ROOT)
    parser.add_argument("--a_flags", default="")
    parser.add_argument("--b_flags", default="")
    parser.add_argument("--scenarios", default="short,health")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--n", type=int, default=250, help="short/health: requests per side per round")
    parser.add_argument("--block", type=int, default=25, help="queries: requests per side per block")
    parser.add_argument("--quick", action="store_true", help="docs/bulk: the --quick request counts")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    source = minilm_source()
    log = Path("/tmp") / f"paired_ab_{os.getpid()}.log"
    print(f"load average {os.getloadavg()[0]:.2f}; A: {_which(args.a_root)} {args.a_flags}; "
          f"B: {_which(args.b_root)} {args.b_flags}", flush=True)
    results: dict[str, Any] = {"a": [str(args.a_root), args.a_flags], "b": [str(args.b_root), args.b_flags]}
    with start_server(args.config, log, "--log_level", "WARNING", *args.a_flags.split(), root=args.a_root) as a, \
            start_server(args.config, log, "--log_level", "WARNING", *args.b_flags.split(), root=args.b_root) as b:
        for name in args.scenarios.split(","):
            if name in ("short", "health", "queries"):
                out = (blocks((a, b), args.n, args.rounds, args.block) if name == "queries"
                       else alternate((a, b), name, args.n, args.rounds))
                print(f"{name}: A p50 {out['a_p50_ms']:.3f} ms (p90 {out['a_p90_ms']:.3f}, mean "
                      f"{out['a_mean_ms']:.3f}); B p50 {out['b_p50_ms']:.3f} ms (p90 {out['b_p90_ms']:.3f}, "
                      f"mean {out['b_mean_ms']:.3f}); paired B - A median {out['paired_diff_median_ms']:+.3f} ms, "
                      f"B faster in {out['b_faster_fraction']:.0%} of {out['n']} {out['unit']}", flush=True)
            else:
                out = loaded((a, b), name, args.rounds, args.quick, source)
                rounds = ", ".join(f"{x:,.0f}/{y:,.0f}" for x, y in out["tokens_per_s"])
                used = [np.mean(np.array(c), axis=0) for c in out["cores_server_client"]]
                print(f"{name}: tokens/s A/B per round {rounds}; median A {out['a_median']:,.0f}, "
                      f"B {out['b_median']:,.0f}; median ratio B/A {out['median_ratio_b_over_a']:.3f}; cores "
                      f"server/client A {used[0][0]:.2f}/{used[0][1]:.2f}, B {used[1][0]:.2f}/{used[1][1]:.2f}",
                      flush=True)
            results[name] = out
        results["peak_rss_mb"] = [a.peak_rss_bytes() / 2**20, b.peak_rss_bytes() / 2**20]
    print(f"peak RSS A {results['peak_rss_mb'][0]:.0f} MB, B {results['peak_rss_mb'][1]:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
