"""The model registry: loading in the background, failures kept apart, ready, live changes."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ovembed.config import ServeConfig
from ovembed.errors import ConfigError, ModelNotFound, ModelNotReady
from ovembed.repository import ModelEntry
from ovembed.serving.api import ModelState
from ovembed.serving.models.registry import ModelRegistry

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 300))


@pytest.fixture(scope="module")
def minilm_dir(minilm_repo: Path) -> Path:
    return minilm_repo.parent / "minilm"


@pytest.fixture()
def mixed_repo(tmp_path: Path, minilm_dir: Path) -> Path:
    """minilm (good), 'no-ir' (graph but no IR files), 'bad-graph' (unparsable graph.pbtxt)."""
    no_ir = tmp_path / "no-ir"
    no_ir.mkdir()
    shutil.copy(minilm_dir / "graph.pbtxt", no_ir / "graph.pbtxt")
    bad = tmp_path / "bad-graph"
    bad.mkdir()
    (bad / "graph.pbtxt").write_text("node { calculator: ", encoding="utf-8")
    config = {"model_config_list": [
        {"config": {"name": "minilm", "base_path": str(minilm_dir)}},
        {"config": {"name": "no-ir", "base_path": "no-ir"}},
        {"config": {"name": "bad-graph", "base_path": "bad-graph"}},
    ]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def test_broken_models_do_not_stop_the_good_one(mixed_repo: Path) -> None:
    async def main() -> None:
        registry = ModelRegistry.from_serve_config(ServeConfig(config_path=mixed_repo))
        assert registry.names() == ["minilm", "no-ir", "bad-graph"]
        assert not registry.ready
        assert registry.status("minilm").state is ModelState.LOADING
        await registry.start()  # returns at once
        assert not registry.ready
        with pytest.raises(ModelNotReady, match="still loading"):
            registry.get("minilm")
        assert not await registry.wait_ready(300)  # two models failed: not ready (OVMS), yet settled
        assert registry.settled
        assert registry.status("minilm").state is ModelState.AVAILABLE
        no_ir = registry.status("no-ir")
        assert no_ir.state is ModelState.UNAVAILABLE and "openvino_model.xml not found" in (
            no_ir.error or "")
        bad = registry.status("bad-graph")
        assert bad.state is ModelState.UNAVAILABLE and "graph.pbtxt" in (bad.error or "")
        with pytest.raises(ModelNotReady, match=r"not available: .*openvino_model\.xml"):
            registry.get("no-ir")
        with pytest.raises(ModelNotFound):
            registry.get("nope")
        with pytest.raises(ModelNotFound):
            registry.status("nope")
        assert [s.info.name for s in registry.available()] == ["minilm"]
        result = await registry.get("minilm").embed(["still serving"])
        assert result.embeddings.shape == (1, 384)
        await registry.stop(5)
        assert registry.status("minilm").state is ModelState.UNAVAILABLE

    run(main())


def test_gpu_override_fails_with_available_devices(minilm_dir: Path) -> None:
    import openvino as ov

    if any(d.startswith("GPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has a GPU")

    async def main() -> None:
        cfg = ServeConfig(model_path=minilm_dir, target_device="GPU")
        registry = ModelRegistry.from_serve_config(cfg)
        assert registry.names() == ["minilm"]  # single-model mode: folder name
        await registry.start()
        assert not await registry.wait_ready(300)  # its only model failed: settled, not ready (OVMS)
        assert registry.settled
        status = registry.status("minilm")
        assert status.state is ModelState.UNAVAILABLE
        assert "device GPU is not available on this machine (available: CPU" in (
            status.error or "")
        await registry.stop()

    run(main())


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to serve"):
        ModelRegistry.from_serve_config(ServeConfig())
    with pytest.raises(ConfigError, match="not both"):
        ModelRegistry.from_serve_config(ServeConfig(config_path=tmp_path / "c.json",
                                                    model_path=tmp_path))
    with pytest.raises(ConfigError, match="not found"):
        ModelRegistry.from_serve_config(ServeConfig(config_path=tmp_path / "missing.json"))
    registry = ModelRegistry.from_serve_config(ServeConfig(model_path=tmp_path,
                                                           model_name="org/named"))
    assert registry.names() == ["org/named"]


def test_live_add_replace_remove(minilm_dir: Path, tmp_path: Path) -> None:
    async def main() -> None:
        registry = ModelRegistry([ModelEntry("a", minilm_dir)], ServeConfig())
        await registry.start()
        assert await registry.wait_ready(300)
        before = await registry.get("a").embed(["live"])

        await registry.add(ModelEntry("b", minilm_dir))
        assert registry.names() == ["a", "b"] and registry.ready
        again = await registry.get("b").embed(["live"])
        assert abs(float((before.embeddings * again.embeddings).sum()) - 1.0) < 1e-5

        old = registry.get("a")
        await registry.add(ModelEntry("a", minilm_dir))  # new version, swapped when warm
        assert registry.status("a").version == 2 and registry.get("a") is not old
        await registry.add(ModelEntry("a", tmp_path / "missing"))  # bad reload: old stays
        status = registry.status("a")
        assert status.state is ModelState.AVAILABLE and "reload failed" in (status.error or "")
        await registry.get("a").embed(["still fine"])

        await registry.remove("b")
        with pytest.raises(ModelNotFound):
            registry.get("b")
        await registry.remove("a")
        await registry.add(ModelEntry("c", minilm_dir))
        assert registry.names() == ["c"] and registry.ready
        await registry.get("c").embed(["c"])
        await registry.stop(5)

    run(main())
