"""Repositories written by OVMS, read as OVMS reads them: graphs without pooling (OVMS 2026.3), legacy
``mean_pooling`` (2025.2), ``graph_path`` with a shared base_path, and entries ovembed cannot serve."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np

from ovembed.config import Pooling, ServeConfig
from ovembed.repository import read_config
from ovembed.serving.api import ModelState
from ovembed.serving.models.registry import ModelRegistry

TEXTS = ["OVMS repositories read exactly as OVMS reads them.", "A second, rather different sentence about cats."]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_ovms_written_repository(minilm_repo: Path, tmp_path: Path) -> None:
    source = minilm_repo.parent / "minilm"
    model = tmp_path / "minilm"
    shutil.copytree(source, model)
    graph = (model / "graph.pbtxt").read_text()
    assert "pooling: MEAN" in graph
    (model / "graph.pbtxt").write_text(graph.replace("      pooling: MEAN\n", ""))  # OVMS 2026.3 writes none
    (model / "legacy.pbtxt").write_text(graph.replace("pooling: MEAN", "mean_pooling: true"))  # OVMS 2025.2
    (model / "cls.pbtxt").write_text(graph.replace("pooling: MEAN", "pooling: CLS"))
    (model / "bad.pbtxt").write_text(graph.replace("pooling: MEAN", "colour: BLUE"))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "model_config_list": [{"config": {"name": "exported", "base_path": str(source)}},
                              {"config": {"name": "nopool", "base_path": "minilm"}}],
        "mediapipe_config_list": [{"name": "legacy", "base_path": "minilm", "graph_path": "legacy.pbtxt"},
                                  {"name": "cls", "base_path": "minilm", "graph_path": "cls.pbtxt"},
                                  {"name": "bad", "base_path": "minilm", "graph_path": "bad.pbtxt"},
                                  {"name": "remote", "base_path": "s3://bucket/minilm"}],
    }))

    async def main() -> None:
        registry = ModelRegistry(read_config(config), ServeConfig(config_path=config))
        await registry.start()
        try:
            assert not await registry.wait_ready(600)  # 'bad' and 'remote' failed: not ready (OVMS), settled
            assert registry.settled
            vectors = {}
            for name in ("exported", "nopool", "legacy", "cls"):
                servable = registry.get(name)
                vectors[name] = (await servable.embed(TEXTS)).embeddings
                assert servable.info.pooling is (Pooling.CLS if name == "cls" else Pooling.MEAN), name
            assert _cosines(vectors["nopool"], vectors["exported"]).min() >= 0.9999
            assert _cosines(vectors["legacy"], vectors["exported"]).min() >= 0.9999
            assert _cosines(vectors["cls"], vectors["exported"]).min() < 0.99  # the graph's CLS is served...
            cls_status = registry.status("cls")  # ...and the contradiction is said
            assert cls_status.state is ModelState.AVAILABLE
            assert cls_status.error == ("graph.pbtxt says pooling CLS but the model's 1_Pooling/config.json says "
                                        "MEAN; serving CLS as the graph says")
            assert registry.status("nopool").error is None
            bad = registry.status("bad")
            assert bad.state is ModelState.UNAVAILABLE
            assert 'bad.pbtxt: graph.pbtxt line 16: Message type "mediapipe.EmbeddingsCalculatorOVOptions" has no ' \
                   'field named "colour"' in str(bad.error)
            remote = registry.status("remote")
            assert remote.state is ModelState.UNAVAILABLE and "s3 storage" in str(remote.error)
        finally:
            await registry.stop()

    asyncio.run(main())
