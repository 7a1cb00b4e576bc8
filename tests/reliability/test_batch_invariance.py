"""A vector must not depend on what it is batched with (f32 compute), and the precision is a
choice the operator makes explicitly (--inference_precision, graph plugin_config, auto)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovembed.config import ServeConfig
from ovembed.errors import ConfigError
from ovembed.graphs import GraphOptions
from ovembed.serving.openvino.loader import load_model
from ovembed.serving.openvino.plan import inference_precision, plugin_config

pytestmark = pytest.mark.reliability

TEXTS = ["a short query", "The quick brown fox jumps over the lazy dog. " * 6,
         "embedding models map text to vectors", "x", "Ünïcödé and emoji 🙂 in one sentence, of middling length"]


def _pad(docs: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(d) for d in docs)
    ids = np.full((len(docs), width), pad_id, dtype=np.int64)
    for row, doc in enumerate(docs):
        ids[row, : len(doc)] = doc
    mask = (np.arange(width) < np.array([len(d) for d in docs])[:, None]).astype(np.int64)
    return ids, mask


def test_vectors_do_not_depend_on_their_batch_at_f32(minilm_repo: Path) -> None:
    import openvino as ov

    loaded = load_model(ov.Core(), "minilm", minilm_repo.parent / "minilm",
                        ServeConfig(inference_precision="f32"))
    assert loaded.engine.latency.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    docs = [list(d) for d in loaded.tokenizer.encode_texts(TEXTS, truncate=True)]
    alone = np.stack([loaded.engine.infer(*_pad([d], loaded.tokenizer.pad_id))[0] for d in docs])
    together = loaded.engine.infer(*_pad(docs, loaded.tokenizer.pad_id))
    shuffled = loaded.engine.infer(*_pad(docs[::-1] + docs, loaded.tokenizer.pad_id))[: len(docs)][::-1]
    assert float(np.abs(alone - together).max()) <= 1e-5
    assert float(np.abs(alone - shuffled).max()) <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-5)
    loaded.engine.close()


def test_the_precision_choice_and_its_reason() -> None:
    graph = GraphOptions()
    assert inference_precision(graph, ServeConfig(), "CPU", "fp32") == (
        "f32", "auto: fp32 weights on CPU compute in f32 (batch-invariant)")
    assert inference_precision(graph, ServeConfig(), "CPU", "int8") == (
        None, "auto: the device's default for int8 weights")
    assert inference_precision(graph, ServeConfig(), "GPU", "fp32")[0] is None
    hinted = GraphOptions(plugin_config={"INFERENCE_PRECISION_HINT": "bf16"})
    assert inference_precision(hinted, ServeConfig(), "CPU", "fp32") == (
        "bf16", "INFERENCE_PRECISION_HINT in graph.pbtxt plugin_config")
    assert inference_precision(hinted, ServeConfig(inference_precision="f32"), "CPU", "fp32") == (
        "f32", "--inference_precision f32")
    assert plugin_config(hinted, ServeConfig(inference_precision="f16"), "CPU", "int8")[
        "INFERENCE_PRECISION_HINT"] == "f16"
    with pytest.raises(ConfigError, match="--inference_precision must be one of auto, f32, bf16, f16"):
        ServeConfig(inference_precision="fp64")
