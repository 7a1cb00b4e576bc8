"""Many concurrent requests through the real MiniLM engine: exact results, backpressure."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ovembed.config import ServeConfig
from ovembed.errors import Overloaded
from ovembed.serving.models.registry import ModelRegistry
from ovembed.serving.tasks.embeddings import EmbeddingServable

T = TypeVar("T")
WORDS = (
    "alpha", "beta", "gamma", "delta", "search", "engine", "vector", "embedding", "model",
    "batch", "queue", "token", "latency", "throughput", "OpenVINO", "CPU", "stream", "request",
    "server", "client", "answer",
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 600))


def make_requests(servable: EmbeddingServable, count: int, seed: int) -> list[list[Any]]:
    rng = random.Random(seed)
    requests: list[list[Any]] = []
    for _ in range(count):
        size = rng.choice([1, 1, 2, 3, 8, 17])
        texts = [" ".join(rng.choices(WORDS, k=rng.choice([1, 3, 12, 40, 120, 220])))
                 for _ in range(size)]
        if rng.random() < 0.3:  # token ids instead of text
            requests.append(servable.tokenize(texts, max_length=200))
        else:
            requests.append(texts)
    return requests


async def start(minilm_repo: Path, **options: Any) -> ModelRegistry:
    registry = ModelRegistry.from_serve_config(ServeConfig(config_path=minilm_repo, **options))
    await registry.start()
    assert await registry.wait_ready(300)
    return registry


def test_concurrent_requests_get_what_they_would_get_alone(minilm_repo: Path) -> None:
    async def main() -> None:
        registry = await start(minilm_repo, max_batch_tokens=2048, max_batch_size=16,
                               max_wait_ms=2.0)
        servable = registry.get("minilm")
        requests = make_requests(servable, 48, seed=1)
        alone = [await servable.embed(r, truncate=True) for r in requests]
        together = await asyncio.gather(*(servable.embed(r, truncate=True) for r in requests))
        for a, b in zip(alone, together, strict=True):
            assert b.embeddings.shape == a.embeddings.shape
            np.testing.assert_allclose(b.embeddings, a.embeddings, atol=1e-4)
            assert b.token_counts == a.token_counts
        assert servable.batcher.queued == 0 and servable.batcher.in_flight == 0
        await registry.stop(5)

    run(main())


def test_tiny_queue_gives_overloaded_and_keeps_serving(minilm_repo: Path) -> None:
    async def main() -> None:
        registry = await start(minilm_repo, max_queue=8)
        servable = registry.get("minilm")
        text = "a sentence that is long enough to take a little while " * 4
        reference = (await servable.embed([text])).embeddings[0]
        outcomes = await asyncio.gather(*(servable.embed([text] * 4) for _ in range(40)),
                                        return_exceptions=True)
        overloaded = [o for o in outcomes if isinstance(o, Overloaded)]
        served = [o for o in outcomes if not isinstance(o, BaseException)]
        assert overloaded and served
        assert len(overloaded) + len(served) == len(outcomes)  # nothing else went wrong
        assert "overloaded" in str(overloaded[0])
        for result in served:
            np.testing.assert_allclose(result.embeddings, np.tile(reference, (4, 1)), atol=1e-4)
        after = await servable.embed([text])
        np.testing.assert_allclose(after.embeddings[0], reference, atol=1e-4)
        assert servable.batcher.queued == 0
        await registry.stop(5)

    run(main())


def test_cancelled_requests_free_their_queue_slots(minilm_repo: Path) -> None:
    async def main() -> None:
        registry = await start(minilm_repo, max_queue=64)
        servable = registry.get("minilm")
        texts = ["cancel me " * 50] * 16
        tasks = [asyncio.create_task(servable.embed(texts)) for _ in range(4)]
        await asyncio.sleep(0.01)
        for task in tasks[1:]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert not isinstance(results[0], BaseException)
        assert all(isinstance(r, asyncio.CancelledError) for r in results[1:])
        for _ in range(100):  # in-flight batches of cancelled requests may still finish
            if servable.batcher.in_flight == 0:
                break
            await asyncio.sleep(0.05)
        assert servable.batcher.queued == 0 and servable.batcher.in_flight == 0
        ok = await servable.embed(["after"])
        assert ok.embeddings.shape == (1, 384)
        await registry.stop(5)

    run(main())
