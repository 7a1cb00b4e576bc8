"""The MiniLM servable end to end (tokenize, batch, OpenVINO) against sentence-transformers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from ovembed.config import ServeConfig
from ovembed.errors import InputTooLong, InvalidInput
from ovembed.serving.models.registry import ModelRegistry
from ovembed.serving.tasks.embeddings import EmbeddingServable

T = TypeVar("T")

TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "OpenVINO runs inference on Intel CPUs, GPUs and NPUs. " * 6,
    "",
    "Ünïcödé, emoji 🙂 and 中文 text in one input",
    "word " * 400,  # longer than 256 tokens
]


class LoopThread:
    """An event loop in a thread, so sync tests can share one registry across a module."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture(scope="module")
def servable(loop: LoopThread, minilm_repo: Path) -> Iterator[EmbeddingServable]:
    registry = ModelRegistry.from_serve_config(ServeConfig(config_path=minilm_repo))

    async def start() -> None:
        await registry.start()
        assert await registry.wait_ready(300)

    loop.run(start())
    yield registry.get("minilm")
    loop.run(registry.stop(5))


@pytest.fixture(scope="module")
def reference(minilm_source: Path) -> np.ndarray:
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(minilm_source), device="cpu")
    assert model.max_seq_length == 256
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True), dtype=np.float32)


def test_vectors_match_sentence_transformers(loop: LoopThread, servable: EmbeddingServable,
                                             reference: np.ndarray) -> None:
    result = loop.run(servable.embed(TEXTS, truncate=True))
    assert result.embeddings.dtype == np.float32 and result.embeddings.shape == (6, 384)
    cosine = (result.embeddings * reference).sum(1)
    assert cosine.min() >= 0.9999, cosine
    np.testing.assert_allclose(np.linalg.norm(result.embeddings, axis=1), 1.0, atol=1e-5)
    assert result.token_counts[0] == 4 and result.token_counts[3] == 2
    assert result.token_counts[5] == 256  # after truncation
    assert result.prompt_tokens == sum(result.token_counts)
    t = result.timings
    assert t.tokenization > 0 and t.queue >= 0 and t.inference > 0


def test_truncation_off_rejects_long_inputs(loop: LoopThread, servable: EmbeddingServable) -> None:
    assert servable.info.truncate is False  # graph.pbtxt default
    with pytest.raises(InputTooLong) as err:
        loop.run(servable.embed(["short", "word " * 400]))
    assert str(err.value) == ("input[1] has 402 tokens; the model takes at most 256: send truncate=true "
                              "(or chunking) or shorten it")
    with pytest.raises(InputTooLong, match=r"input\[0\] has 300 tokens; the model takes at most 256: "):
        loop.run(servable.embed([list(range(1000, 1300))], truncate=False))


def test_token_ids_equal_text_with_same_ids(loop: LoopThread, servable: EmbeddingServable) -> None:
    ids = servable.tokenize(TEXTS[:5])
    by_text = loop.run(servable.embed(TEXTS[:5]))
    by_ids = loop.run(servable.embed(ids))
    np.testing.assert_allclose(by_ids.embeddings, by_text.embeddings, atol=1e-5)
    assert by_ids.token_counts == by_text.token_counts
    single = loop.run(servable.embed(ids[0]))  # a flat list is one document
    np.testing.assert_allclose(single.embeddings[0], by_text.embeddings[0], atol=1e-5)
    truncated = loop.run(servable.embed([list(range(1000, 1300))], truncate=True))
    assert truncated.token_counts == [256]


def test_bad_inputs(loop: LoopThread, servable: EmbeddingServable) -> None:
    with pytest.raises(InvalidInput, match="outside the vocabulary"):
        loop.run(servable.embed([[1, 2, 99_999]]))
    with pytest.raises(InvalidInput):
        loop.run(servable.embed([{"a": 1}]))  # type: ignore[list-item]
    empty = loop.run(servable.embed([]))
    assert empty.embeddings.shape == (0, 384) and empty.token_counts == []


def test_tokenize(servable: EmbeddingServable) -> None:
    assert servable.tokenize(["hello world"]) == [[101, 7592, 2088, 102]]
    assert servable.tokenize("hello world") == [[101, 7592, 2088, 102]]  # type: ignore[arg-type]
