"""Idle unloading in the real registry, driven by a fake clock, over a stand-in loader (no OpenVINO)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import numpy as np
import pytest

from ovembed.config import Pooling, ServeConfig
from ovembed.errors import ModelNotReady
from ovembed.repository import ModelEntry
from ovembed.serving.api import LOADING_RETRY_AFTER, ModelInfo, ModelState
from ovembed.serving.models.registry import ModelRegistry
from ovembed.serving.tasks.base import BaseServable

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Engine:
    slots = 1
    dimensions = 4
    pad_lone = False

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def start(self, input_ids: np.ndarray, attention_mask: np.ndarray, on_done: Any) -> None:
        on_done(np.ones((input_ids.shape[0], 4), dtype=np.float32))

    def close(self) -> None:
        self.log.append("closed")


class _Spec:
    def batch_policy(self, policy: Any, info: ModelInfo) -> Any:
        return policy

    def servable(self, loaded: Any, batcher: Any, deps: Any) -> BaseServable:
        return BaseServable(loaded.info, loaded.tokenizer, batcher, deps)


def _registry(cfg: ServeConfig, *entries: ModelEntry) -> tuple[ModelRegistry, Clock, list[str]]:
    clock, log = Clock(), []
    registry = ModelRegistry(entries or [ModelEntry("m", Path("/models/m"))], cfg, clock=clock)

    def load(entry: ModelEntry) -> Any:
        log.append(f"loaded {entry.name}")
        info = ModelInfo(entry.name, 4, 16, Pooling.MEAN, True, True, "CPU", "fp32", 0)
        return SimpleNamespace(info=info, engine=_Engine(log), tokenizer=SimpleNamespace(pad_id=0), spec=_Spec(),
                               warning=None)

    registry._load_blocking = load  # type: ignore[method-assign]
    return registry, clock, log


def _cfg(**fields: Any) -> ServeConfig:
    return ServeConfig(model_path=Path("/models/m"), **fields)


def test_a_model_idle_for_its_timeout_is_unloaded_and_the_next_request_loads_it() -> None:
    async def main() -> None:
        registry, clock, log = _registry(_cfg(idle_unload_seconds=60))
        await registry.start()
        assert await registry.wait_ready(10)
        first = registry.get("m")
        clock.now += 59
        assert await registry.unload_idle() == []
        clock.now += 1
        assert await registry.unload_idle() == ["m"]
        status = registry.status("m")
        assert status.state is ModelState.UNLOADED and status.version == 1
        assert status.reason == "unloaded after 60 s idle; the next request loads it"
        assert log == ["loaded m", "closed"]
        assert registry.available() == [] and registry.ready  # servable on demand: the server stays ready
        info = registry.info("m")
        assert info is not None and info.name == "m"  # kept for listings and default-model choice
        again = await registry.acquire("m")
        assert again is not first and registry.status("m").state is ModelState.AVAILABLE
        assert log == ["loaded m", "closed", "loaded m"]
        result = await again.batcher.submit([[1, 2, 3]])  # the fresh engine answers
        assert result.embeddings.shape == (1, 4)
        await registry.stop(1)

    run(main())


def test_each_request_restarts_the_timer_and_work_in_progress_keeps_a_model_loaded() -> None:
    async def main() -> None:
        registry, clock, _ = _registry(_cfg(idle_unload_seconds=10))
        await registry.start()
        await registry.wait_ready(10)
        clock.now += 8
        servable = await registry.acquire("m")
        clock.now += 8
        assert await registry.unload_idle() == []  # 8 s since the request
        with servable.in_progress():  # type: ignore[attr-defined]
            clock.now += 100
            assert await registry.unload_idle() == []  # busy: counts as used now
        clock.now += 9
        assert await registry.unload_idle() == []
        clock.now += 1
        assert await registry.unload_idle() == ["m"]
        await registry.stop(1)

    run(main())


def test_the_config_entry_overrides_the_flag_and_zero_means_never() -> None:
    async def main() -> None:
        registry, clock, _ = _registry(
            _cfg(idle_unload_seconds=10),
            ModelEntry("never", Path("/n"), idle_unload_seconds=0),
            ModelEntry("soon", Path("/s"), idle_unload_seconds=2), ModelEntry("flag", Path("/f")))
        await registry.start()
        await registry.wait_ready(10)
        assert [registry.idle_timeout(n) for n in ("never", "soon", "flag")] == [None, 2, 10]
        clock.now += 2
        assert await registry.unload_idle() == ["soon"]
        clock.now += 1000
        assert await registry.unload_idle() == ["flag"]
        assert registry.status("never").state is ModelState.AVAILABLE
        await registry.stop(1)

    run(main())


def test_keep_alive_zero_unloads_after_the_request_and_negative_keeps_it_forever() -> None:
    async def main() -> None:
        registry, clock, log = _registry(_cfg(idle_unload_seconds=10))
        await registry.start()
        await registry.wait_ready(10)
        await registry.acquire("m")
        registry.keep_alive("m", -1)
        clock.now += 10_000
        assert await registry.unload_idle() == []
        assert registry.idle_timeout("m") is None
        await registry.acquire("m")  # a request without keep_alive: the configured timeout again
        assert registry.idle_timeout("m") == 10
        registry.keep_alive("m", 300)
        assert registry.idle_timeout("m") == 300
        registry.keep_alive("m", 0)
        while registry.status("m").state is not ModelState.UNLOADED or "closed" not in log:
            await asyncio.sleep(0.01)
        assert log == ["loaded m", "closed"]
        await registry.acquire("m")
        assert registry.status("m").state is ModelState.AVAILABLE and registry.idle_timeout("m") == 10
        await registry.stop(1)

    run(main())


def test_without_load_wait_a_request_gets_503_with_retry_after_while_the_model_loads() -> None:
    async def main() -> None:
        registry, clock, log = _registry(_cfg(idle_unload_seconds=5, load_wait_seconds=0))
        await registry.start()
        await registry.wait_ready(10)
        clock.now += 5
        await registry.unload_idle()
        with pytest.raises(ModelNotReady) as caught:
            await registry.acquire("m")
        assert caught.value.retry_after == LOADING_RETRY_AFTER
        assert "is still loading (loading again after being unloaded while idle)" in caught.value.message
        assert registry.status("m").state is ModelState.LOADING and registry.ready
        await registry.wait_ready(10)
        assert registry.status("m").state is ModelState.AVAILABLE
        assert log == ["loaded m", "closed", "loaded m"]  # one load, however many asked
        await registry.stop(1)

    run(main())


def test_a_sync_get_of_an_unloaded_model_starts_loading_it() -> None:
    async def main() -> None:
        registry, clock, _ = _registry(_cfg(idle_unload_seconds=5))
        await registry.start()
        await registry.wait_ready(10)
        clock.now += 5
        await registry.unload_idle()
        with pytest.raises(ModelNotReady, match="still loading"):
            registry.get("m")
        await registry.wait_ready(10)
        assert registry.get("m").info.name == "m"
        await registry.stop(1)

    run(main())


def test_a_reload_of_an_unloaded_model_keeps_it_unloaded_with_the_new_version() -> None:
    async def main() -> None:
        registry, clock, log = _registry(_cfg(idle_unload_seconds=5))
        await registry.start()
        await registry.wait_ready(10)
        clock.now += 5
        await registry.unload_idle()
        await registry.add(ModelEntry("m", Path("/models/m2")))
        status = registry.status("m")
        assert (status.state, status.version) == (ModelState.UNLOADED, 2)
        assert log == ["loaded m", "closed"]
        assert (await registry.acquire("m")).info.name == "m"
        assert registry.status("m").version == 2
        await registry.stop(1)

    run(main())
