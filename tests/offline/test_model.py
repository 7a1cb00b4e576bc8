"""ovembed.offline.model: the Python API over the engine's use cases (a fake registry; no model)."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from ovembed.errors import InputTooLong, ModelNotReady
from ovembed.offline.model import ChunkingOptions, Model
from ovembed.serving.wire.compact import compact
from tests.serving.fakes import FakeRegistry, FakeServable, expected_vector, text_ids

TEXTS = [f"document number {i} " + "word " * (i % 4) for i in range(7)]


def _expected(texts: list[str], dims: int = 16) -> np.ndarray:
    return np.stack([expected_vector(text_ids(t), dims, True) for t in texts])


@pytest.fixture
def model() -> Model:
    fake = FakeServable("fake", max_length=64)
    with Model.start(FakeRegistry(fake), "fake") as m:
        yield m


def test_embed_splits_into_batches_and_keeps_order(model: Model) -> None:
    fake = model.registry.get("fake")
    out = model.embed(TEXTS, batch_size=2)
    assert out.shape == (7, 16) and out.dtype == np.float32
    np.testing.assert_allclose(out, _expected(TEXTS), rtol=1e-6)
    assert sorted(len(call[0]) for call in fake.calls) == [1, 2, 2, 2]  # type: ignore[attr-defined]


def test_single_string_options_and_types(model: Model) -> None:
    one = model.embed(TEXTS[0])
    assert one.shape == (16,)
    np.testing.assert_allclose(one, _expected(TEXTS[:1])[0], rtol=1e-6)
    short = model.embed(TEXTS, dimensions=4)
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(model.embed(TEXTS, precision="int8"), compact(_expected(TEXTS), "int8"))
    assert model.embed(TEXTS, precision="float16").dtype == np.float16
    assert model.embed(TEXTS[:2], convert_to="list")[0] == pytest.approx(_expected(TEXTS[:1])[0].tolist(), rel=1e-6)
    assert model.encode([]).shape == (0, 16)


def test_chunk_spans_are_renumbered_across_batches(model: Model) -> None:
    long = ["a b c d e f g h i j", "k l m", "n o p q r s t u v w x y"]
    result = model.embed_result(long, batch_size=1, chunking=ChunkingOptions(size=4, combine="none"))
    owners = [c.input_index for c in result.chunks or []]
    assert owners == sorted(owners) and set(owners) == {0, 1, 2}
    assert result.vectors.shape[0] == len(owners) == len(result.token_counts)


def test_errors_are_the_servers(model: Model) -> None:
    with pytest.raises(InputTooLong, match=r"input\[0\] has \d+ tokens"):
        model.embed(["word " * 100])


def test_threads_share_one_model(model: Model) -> None:
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = model.embed(TEXTS[i:] + TEXTS[:i], batch_size=3)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, out in results.items():
        np.testing.assert_allclose(out, _expected(TEXTS[i:] + TEXTS[:i]), rtol=1e-6)


def test_close_stops_the_registry_and_the_thread() -> None:
    registry = FakeRegistry(FakeServable("fake", max_length=64))
    model = Model.start(registry, "fake")
    assert registry.started
    with model:
        model.embed(["x"])
    assert registry.stopped and "closed" in repr(model)
    with pytest.raises(RuntimeError, match="closed"):
        model.embed(["x"])
    model.close()  # idempotent


def test_a_model_that_failed_to_load_says_why() -> None:
    registry = FakeRegistry(failed={"bad": "graph.pbtxt is broken"})
    with pytest.raises(ModelNotReady, match=r"graph\.pbtxt is broken"):
        Model.start(registry, "bad")
    assert registry.stopped


def test_sparse_and_wrong_task() -> None:
    with Model.start(FakeRegistry(FakeServable("splade", task="sparse", max_length=64)), "splade") as m:
        vectors = m.embed_sparse(["alpha beta", "gamma"], top_k=2)
        assert [len(v.indices) for v in vectors] == [2, 2]
        with pytest.raises(Exception, match="sparse model"):
            m.embed(["x"])


def test_import_ovembed_stays_light() -> None:
    code = "import sys, ovembed; heavy = {'numpy', 'openvino', 'torch', 'pyarrow'} & set(sys.modules); print(heavy)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "set()"


def test_offline_modules_import_no_export_stack() -> None:
    code = ("import sys, ovembed.offline.job, ovembed.offline.batchfile, ovembed.offline.command, ovembed.ray; "
            "print(sorted({'torch', 'transformers', 'optimum', 'nncf', 'pyarrow', 'ray'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
