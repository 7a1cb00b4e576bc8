"""Retrieval features on the real engine: prompts vs sentence-transformers, chunking,
truncation direction and the cache, on a tiny BERT exported with e5-style prompts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ovembed.config import ExportConfig, ServeConfig, WeightFormat
from ovembed.repository import read_config
from ovembed.serving.api import ChunkingOptions, EmbedOptions
from ovembed.serving.models.registry import ModelRegistry
from ovembed.serving.tasks.embeddings import EmbeddingServable
from ovembed.serving.usecases.embed import EmbedRequest, embed_options
from tests.serving.tasks.test_embeddings import LoopThread
from tests.tiny_models import BUILDERS

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.slow]  # exports a model
TEXTS = ["what is the capital of france", "the quick brown fox jumps over the lazy dog"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    return BUILDERS["bert-prompts"](tmp_path_factory.mktemp("bert-prompts") / "src")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Path:
    from ovembed.export.pipeline import export_model

    out = tmp_path_factory.mktemp("repo")
    export_model(ExportConfig(source_model=str(source), model_name="e5", model_repository_path=out,
                              weight_format=WeightFormat.FP32))
    return out / "config.json"


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture(scope="module")
def registry(loop: LoopThread, repo: Path) -> Iterator[ModelRegistry]:
    reg = ModelRegistry.from_serve_config(ServeConfig(config_path=repo, cache_bytes=1 << 20))

    async def start() -> None:
        await reg.start()
        await reg.wait_ready()

    loop.run(start())
    yield reg
    loop.run(reg.stop())


def _embed(loop: LoopThread, servable: EmbeddingServable, inputs: Any, **options: Any) -> Any:
    return loop.run(servable.embed(inputs, options=EmbedOptions(**options) if options else None))


def _st(source: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(source), device="cpu")


def test_prompts_match_sentence_transformers(loop: LoopThread, registry: ModelRegistry, source: Path) -> None:
    servable = registry.get("e5")
    assert servable.info.prompts.prompts == {"query": "query: ", "passage": "passage: "}
    st = _st(source)
    for name in ("query", "passage"):
        got = _embed(loop, servable, TEXTS, prompt=servable.info.prompts.choose(prompt_name=name))
        want = st.encode(TEXTS, prompt_name=name, normalize_embeddings=True)
        np.testing.assert_allclose(got.embeddings, want, atol=2e-5)
    # a request naming no prompt: the use case picks the default (query), as encode() does
    options = embed_options(servable.info, EmbedRequest("e5", TEXTS))
    default = loop.run(servable.embed(TEXTS, options=options))
    plain = loop.run(servable.embed(TEXTS))  # the servable itself adds no prompt
    np.testing.assert_allclose(default.embeddings, st.encode(TEXTS, normalize_embeddings=True), atol=2e-5)
    assert not np.allclose(default.embeddings, plain.embeddings, atol=1e-3)
    # the prompt's tokens count in usage
    n_prompt = len(servable.tokenizer.encode_with_offsets(["query: "])[0][0])
    assert n_prompt > 0
    assert [a - b for a, b in zip(default.token_counts, plain.token_counts, strict=True)] == [n_prompt] * 2


def test_chunks_equal_each_chunk_embedded_alone(loop: LoopThread, registry: ModelRegistry) -> None:
    servable = registry.get("e5")
    room = servable.info.max_length - 2  # [CLS] ... [SEP]
    text = " ".join(["hello"] * (3 * room))  # one token per word: 3x the model's maximum
    assert len(servable.tokenizer.encode_with_offsets([text])[0][0]) == 3 * room
    none = _embed(loop, servable, [text], prompt="", chunking=ChunkingOptions(combine="none"))
    assert none.chunks is not None and len(none.chunks) == 3 == none.embeddings.shape[0]
    cls, sep = servable.tokenizer.affixes
    for row, span in zip(none.embeddings, none.chunks, strict=True):
        piece = text[span.start:span.end]
        assert piece == " ".join(["hello"] * room)
        alone = _embed(loop, servable, [[*cls, *servable.tokenizer.encode_with_offsets([piece])[0][0], *sep]])
        np.testing.assert_allclose(row, alone.embeddings[0], atol=1e-5)
    mean = _embed(loop, servable, [text], prompt="", chunking=ChunkingOptions())
    weights = np.array(none.token_counts, dtype=np.float64)
    expected = (none.embeddings * weights[:, None]).sum(0) / weights.sum()
    np.testing.assert_allclose(mean.embeddings[0], expected / np.linalg.norm(expected), atol=1e-5)
    assert mean.token_counts == [sum(none.token_counts)]


def test_chunk_limits_per_input(loop: LoopThread, registry: ModelRegistry) -> None:
    """The request's chunking.max_chunks and the server's --max_chunks_per_input (the registry's servable
    carries it; 1024 by default) are each a 413 naming the limit."""
    from ovembed.errors import PayloadTooLarge

    servable = registry.get("e5")
    assert servable.max_chunks == 1024
    room = servable.info.max_length - 2
    text = " ".join(["hello"] * (3 * room))  # 3 chunks
    with pytest.raises(PayloadTooLarge, match=r"needs 3 chunks .* 'chunking.max_chunks' \(2\)"):
        _embed(loop, servable, [text], prompt="", chunking=ChunkingOptions(max_chunks=2))
    servable.max_chunks = 2
    try:
        with pytest.raises(PayloadTooLarge, match=r"needs 3 chunks .* per input \(2, --max_chunks_per_input\)"):
            _embed(loop, servable, [text], prompt="", chunking=ChunkingOptions())
        two = " ".join(["hello"] * (2 * room))  # exactly at the limit
        none = _embed(loop, servable, [two], prompt="", chunking=ChunkingOptions(combine="none"))
        assert none.embeddings.shape[0] == 2
    finally:
        servable.max_chunks = 1024


def test_truncation_direction_left_keeps_the_end(loop: LoopThread, registry: ModelRegistry) -> None:
    servable = registry.get("e5")
    words = " ".join(f"{w}" for w in ("the quick brown fox jumps over the lazy dog " * 20).split())
    ids = servable.tokenizer.encode_with_offsets([words])[0][0]
    cls, sep = servable.tokenizer.affixes
    keep = servable.info.max_length - 2
    left = loop.run(servable.embed([words], truncate=True,
                                   options=EmbedOptions(prompt="", truncation_direction="left")))
    right = loop.run(servable.embed([words], truncate=True, options=EmbedOptions(prompt="")))
    tail = _embed(loop, servable, [[*cls, *ids[-keep:], *sep]])
    head = _embed(loop, servable, [[*cls, *ids[:keep], *sep]])
    np.testing.assert_allclose(left.embeddings, tail.embeddings, atol=1e-5)
    np.testing.assert_allclose(right.embeddings, head.embeddings, atol=1e-5)


def test_cache_hits_are_identical_skip_the_engine_and_reload_invalidates(
        loop: LoopThread, registry: ModelRegistry, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = registry.cache
    assert cache is not None
    servable = registry.get("e5")
    first = loop.run(servable.embed(["a cached sentence", "another one"]))
    submitted: list[int] = []
    real_submit = servable.batcher.submit

    async def counting(docs: Any) -> Any:
        submitted.append(len(docs))
        return await real_submit(docs)

    monkeypatch.setattr(servable.batcher, "submit", counting)
    hits = cache.hits
    again = loop.run(servable.embed(["a cached sentence", "another one"]))
    assert again.embeddings.tobytes() == first.embeddings.tobytes()
    assert again.token_counts == first.token_counts
    assert submitted == [] and cache.hits == hits + 2
    mixed = loop.run(servable.embed(["another one", "a new sentence"]))
    assert submitted == [1] and mixed.embeddings[0].tobytes() == first.embeddings[1].tobytes()
    # a different prompt is a different input
    loop.run(servable.embed(["another one"], options=EmbedOptions(prompt="passage: ")))
    assert submitted == [1, 1]

    entries = len(cache)
    loop.run(registry.add(read_config(repo)[0]))  # reload: a new version of the model
    assert len(cache) == 0 < entries
    fresh = registry.get("e5")
    assert fresh is not servable and fresh.scope == ("e5", servable.scope[1] + 1)
    misses = cache.misses
    reloaded = loop.run(fresh.embed(["a cached sentence"]))
    assert cache.misses == misses + 1
    np.testing.assert_allclose(reloaded.embeddings[0], first.embeddings[0], atol=1e-6)


def test_cache_off_by_default(repo: Path) -> None:
    assert ModelRegistry.from_serve_config(ServeConfig(config_path=repo)).cache is None
