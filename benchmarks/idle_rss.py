"""Resident memory around an idle unload: before loading, loaded, unloaded, unloaded + ``malloc_trim``.

Exports the packaged all-MiniLM-L6-v2 at fp32 (or uses ``--config_path``), loads it in this process with
the serving registry, embeds ``--requests`` batches, unloads it as the idle timer would (a fake clock),
and prints RSS (``/proc/self/status`` VmRSS) at each step, for ``--cycles`` load/unload cycles. The first
unload of each cycle skips the allocator trim the registry does, to show what the trim gives back.

    .venv/bin/python -m benchmarks.idle_rss --cycles 3
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import export
from ovembed.benchmark.dataset import synthetic_documents


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def _run(config_path: Path, cycles: int, requests: int) -> list[tuple[str, float]]:
    from ovembed.config import ServeConfig
    from ovembed.serving.models import memory
    from ovembed.serving.models import registry as registry_module
    from ovembed.serving.models.registry import ModelRegistry

    readings = [("start (ovembed imported)", _rss_mb())]
    now = [0.0]
    models = ModelRegistry.from_serve_config(ServeConfig(config_path=config_path, idle_unload_seconds=60))
    import openvino_tokenizers  # noqa: F401  (what loading a model loads besides the model)

    models.core.get_property("CPU", "FULL_DEVICE_NAME")  # the CPU plugin's libraries, loaded once per process
    readings.append(("OpenVINO + CPU plugin + tokenizers, no model", _rss_mb()))
    models.clock = lambda: now[0]
    trimmed = registry_module.release_freed_memory
    docs = synthetic_documents(64, 128, seed=1)
    await models.start()
    await models.wait_ready()
    name = models.names()[0]
    for cycle in range(1, cycles + 1):
        servable: Any = await models.acquire(name)
        for i in range(requests):
            await servable.embed(docs[i % 8 * 8:(i % 8 + 1) * 8])
        readings.append((f"cycle {cycle}: loaded, after {requests} requests", _rss_mb()))
        del servable  # a request's reference ends with the request
        registry_module.release_freed_memory = lambda: False  # type: ignore[assignment]
        now[0] += 60
        assert await models.unload_idle() == [name]
        readings.append((f"cycle {cycle}: unloaded, no trim", _rss_mb()))
        memory.release_freed_memory()
        readings.append((f"cycle {cycle}: unloaded + malloc_trim(0)", _rss_mb()))
        registry_module.release_freed_memory = trimmed  # type: ignore[assignment]
    await models.stop()
    return readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config_path", type=Path, help="a repository config.json (default: export MiniLM fp32)")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--requests", type=int, default=50, help="8-document batches embedded per cycle")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = args.config_path or export(Path(tmp) / "repo")
        for label, mb in asyncio.run(_run(config, args.cycles, args.requests)):
            print(f"{label:45s} {mb:8.1f} MB")


if __name__ == "__main__":
    main()
