"""Latency of one short query through the servable: engine (cache miss) vs embedding cache (hit).

Exports the packaged all-MiniLM-L6-v2 at fp32 into a temporary repository (or uses
``--config_path``), loads it with ``--cache_bytes``, and times ``servable.embed`` in-process (no
HTTP) for ``--n`` distinct queries twice: the first pass misses, the second hits. Prints p50/p90.

    .venv/bin/python -m benchmarks.cache_hit --n 200
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.harness import export, registry
from ovembed.benchmark.dataset import synthetic_documents
from ovembed.benchmark.stats import latency_of


async def _run(config_path: Path, n: int) -> dict[str, list[float]]:
    async with registry(config_path, cache_bytes=64 << 20) as models:
        servable = models.get(models.names()[0])
        queries = synthetic_documents(n, 8, seed=3)
        times: dict[str, list[float]] = {"miss": [], "hit": []}
        for label in ("miss", "hit"):
            for query in queries:
                start = time.perf_counter()
                await servable.embed([query])
                times[label].append(time.perf_counter() - start)
        stats = models.cache_stats()
        assert stats is not None and stats.hits == n, stats
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config_path", type=Path, help="a repository config.json (default: export MiniLM)")
    parser.add_argument("--n", type=int, default=200, help="distinct queries (each timed as miss, then hit)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = args.config_path or export(Path(tmp), "--skip_verify")
        times = asyncio.run(_run(config, args.n))
    for label, values in times.items():
        ms = latency_of(values)
        print(f"{label:>4}: p50 {ms.median:.3f} ms  p99 {ms.p99:.3f} ms  (n={len(values)})")


if __name__ == "__main__":
    main()
