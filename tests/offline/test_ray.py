"""ovembed.ray.Embedder: the map_batches callable, without Ray (a fake registry) and on a local Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ovembed.offline.model import Model
from tests.serving.fakes import FakeRegistry, FakeServable, expected_vector, text_ids


def test_embedder_adds_a_vector_column(monkeypatch: pytest.MonkeyPatch) -> None:
    import ovembed.offline.model as model_module
    from ovembed.ray import Embedder

    seen: dict[str, Any] = {}

    def fake_load(model: str, **kwargs: Any) -> Model:
        seen.update(model=model, **kwargs)
        return Model.start(FakeRegistry(FakeServable("fake", max_length=64)), "fake")

    monkeypatch.setattr(model_module, "load", fake_load)
    embedder = Embedder("/models/fake", text_column="body", output_column="vec",
                        load_options={"target_device": "CPU"}, dimensions=8)
    try:
        texts = np.array(["one two", "three", "four five six"])
        out = embedder({"body": texts, "id": np.arange(3)})
        assert seen == {"model": "/models/fake", "config_path": None, "target_device": "CPU"}
        assert out["vec"].shape == (3, 8) and list(out["id"]) == [0, 1, 2]
        full = np.stack([expected_vector(text_ids(t), 16, True) for t in texts])
        np.testing.assert_allclose(out["vec"], full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True),
                                   rtol=1e-5)
        with pytest.raises(KeyError, match="no column 'body'"):
            embedder({"text": texts})
    finally:
        embedder.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_local_ray_equals_the_single_process_api(minilm_repo: Path) -> None:
    ray = pytest.importorskip("ray")
    import ovembed
    from ovembed.ray import Embedder

    texts = [f"text number {i} " + "more " * (i % 11) for i in range(200)]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
        ds = ds.map_batches(Embedder, fn_constructor_kwargs={"model": "minilm", "config_path": str(minilm_repo)},
                            concurrency=2, num_cpus=1, batch_size=32, batch_format="numpy")
        rows = sorted(ds.take_all(), key=lambda r: r["id"])
    finally:
        ray.shutdown()
    with ovembed.load("minilm", config_path=minilm_repo) as model:
        local = model.embed(texts)
    np.testing.assert_allclose(np.stack([r["embedding"] for r in rows]), local, atol=2e-6)
