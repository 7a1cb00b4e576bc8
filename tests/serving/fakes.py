"""A deterministic registry and servable implementing ovembed.serving.api, for route tests.

Tokenization: a text is ``[CLS] + one id per whitespace word + [SEP]`` (so its token count is
words + 2); a token-id document is used as is. The embedding of an input is a vector derived
from a hash of the ids the model saw (after truncation), normalised when the model normalises.
:func:`expected_vector` recomputes it so tests can compare exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette

from ovembed.config import Pooling, ServeConfig, Task
from ovembed.errors import InputTooLong, InvalidInput, ModelNotFound, Overloaded
from ovembed.heads.sparse import prune
from ovembed.prompts import PromptSet
from ovembed.repository import ModelEntry
from ovembed.serving.api import (
    DEFAULT_RERANK,
    DEFAULT_SPARSE,
    BatchObserver,
    CacheStats,
    ChunkSpan,
    ClassifyInput,
    ClassifyResult,
    EmbedOptions,
    EmbedResult,
    Inputs,
    ModelInfo,
    ModelState,
    ModelStatus,
    MultiResult,
    Output,
    RerankOptions,
    RerankResult,
    Servable,
    SparseOptions,
    SparseResult,
    SparseVector,
    Timings,
    TruncationDirection,
    not_ready,
    wrong_output,
    wrong_task,
)
from ovembed.serving.http.app import create_app
from ovembed.serving.tasks.passages import chunk_document, weighted_mean
from ovembed.serving.tasks.table import spec_of

CLS, SEP, PAD = 101, 102, 0
VOCAB = 30522
CREATED = 1_700_000_000
TEST_HOST = "testserver"  # the Host header starlette's TestClient sends
TIMINGS = Timings(tokenization=0.002, queue=0.003, inference=0.004)


def text_ids(text: str) -> list[int]:
    return [CLS, *(1000 + zlib.crc32(w.encode()) % 20000 for w in text.split()), SEP]


def word_offsets(text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """The fake's ids without special tokens, with each word's character span."""
    ids, offsets = [], []
    for match in re.finditer(r"\S+", text):
        ids.append(1000 + zlib.crc32(match.group().encode()) % 20000)
        offsets.append(match.span())
    return ids, offsets


def seen_ids(item: str | Sequence[int], max_length: int, truncate: bool,
             direction: str = "right", index: int | None = None, *, max_tokens: int | None = None,
             specials: bool = True) -> list[int]:
    """The ids the fake model embeds; raises InputTooLong like the real engine. ``max_tokens`` cuts
    to that many (special tokens kept); ``specials`` false leaves [CLS]/[SEP] out of texts."""
    ids = (text_ids(item) if specials else text_ids(item)[1:-1]) if isinstance(item, str) else list(item)
    limit = max_tokens or max_length
    if len(ids) <= limit:
        return ids
    if not truncate:
        raise InputTooLong(len(ids), max_length, index=index)
    if not isinstance(item, str) or not specials:
        return ids[-limit:] if direction == "left" else ids[:limit]
    return [CLS, *ids[len(ids) - limit + 1:]] if direction == "left" else [*ids[: limit - 1], SEP]


def expected_vector(ids: Sequence[int], dimensions: int, normalize: bool) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(repr(list(ids)).encode()).digest()[:8], "little")
    vec = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return vec / np.linalg.norm(vec) if normalize else vec * np.float32(3.0)


def expected_sparse(ids: Sequence[int], vocab: int = VOCAB) -> np.ndarray:
    """The fake sparse model's weights: each id it saw weighs 0.5 per occurrence, plus 0.1 x position."""
    row = np.zeros(vocab, dtype=np.float32)
    for position, token in enumerate(ids):
        row[token] += np.float32(0.5 + 0.1 * position)
    return row


def expected_logit(query: str, document: str) -> float:
    """The fake reranker's logit: 2 x the words the pair shares, minus 1, plus a small per-document term."""
    shared = len(set(query.lower().split()) & set(document.lower().split()))
    return float(np.float32(2 * shared - 1 + (zlib.crc32(document.encode()) % 100) / 1000))


FAKE_LABELS = ("negative", "neutral", "positive")


def classify_ids(item: ClassifyInput, max_length: int, truncate: bool, index: int) -> list[int]:
    """The ids the fake classifier sees: a text as :func:`text_ids`, a pair ``[CLS] a [SEP] b [SEP]``; cut at the
    end (``truncate``) or InputTooLong like the real engine."""
    ids = text_ids(item) if isinstance(item, str) else [*text_ids(item[0]), *text_ids(item[1])[1:]]
    if len(ids) > max_length:
        if not truncate:
            raise InputTooLong(len(ids), max_length, index=index)
        ids = [*ids[: max_length - 1], SEP]
    return ids


def expected_class_logits(ids: Sequence[int], labels: int = len(FAKE_LABELS)) -> np.ndarray:
    """The fake classifier's logits for the ids it saw."""
    seed = int.from_bytes(hashlib.sha256(repr(["classify", *ids]).encode()).digest()[:8], "little")
    return (np.random.default_rng(seed).standard_normal(labels) * 2).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class FakeServable:
    """One fake model. Knobs: ``overloaded``, ``fail_with`` (any exception), ``block`` (an
    event embed waits on, to test cancellation; ``cancelled`` records it), ``queue_depth``
    (what /metrics reports as queued). ``matryoshka`` is what ``ModelInfo.matryoshka`` says; the
    default, any size, keeps ``dimensions`` open (a real model without a record refuses it)."""

    def __init__(self, name: str = "fake", *, dimensions: int = 16, max_length: int = 8,
                 normalize: bool = True, truncate: bool = False, precision: str = "fp32",
                 prompts: PromptSet | None = None, task: str = "embeddings",
                 matryoshka: tuple[int, ...] | None = ()) -> None:
        """``task="sparse"``: a sparse model (vocabulary-sized vectors, :func:`expected_sparse`);
        ``task="rerank"``: a reranker (:func:`expected_logit`)."""
        if task == "sparse":
            dimensions, normalize = VOCAB, False
        if task == "rerank":
            dimensions, normalize = 1, False
        labels: tuple[str, ...] = ()
        if task == "classify":
            labels = FAKE_LABELS
            dimensions, normalize = len(labels), False
        self._info = ModelInfo(name=name, dimensions=dimensions, max_length=max_length,
                               pooling=Pooling.MEAN, normalize=normalize, truncate=truncate,
                               device="CPU", precision=precision, created=CREATED,
                               prompts=prompts or PromptSet(), task=Task(task),
                               endpoint=spec_of(Task(task)).endpoint, matryoshka=matryoshka, labels=labels)
        self.classify_calls: list[tuple[list[ClassifyInput], bool | None, str]] = []
        self.pruning: list[SparseOptions] = []
        self.calls: list[tuple[list[Any], bool | None]] = []
        self.tokenize_calls: list[dict[str, Any]] = []
        self.rerank_calls: list[tuple[str, list[str], RerankOptions]] = []
        self.options: list[EmbedOptions] = []
        self.overloaded = False
        self.fail_with: BaseException | None = None
        self.block: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.cancelled = False
        self.queue_depth = 0

    @property
    def info(self) -> ModelInfo:
        return self._info

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None,
                    options: EmbedOptions | None = None) -> EmbedResult:
        if self._info.task != "embeddings":
            raise wrong_task(self._info, "embeddings")
        return await self._embed(inputs, truncate, options)

    async def embed_sparse(self, inputs: Inputs, *, truncate: bool | None = None,
                           options: EmbedOptions | None = None,
                           pruning: SparseOptions = DEFAULT_SPARSE) -> SparseResult:
        if self._info.task != "sparse":
            raise wrong_task(self._info, "sparse")
        if options is not None and options.chunking is not None:
            raise InvalidInput("chunking is for dense embeddings", param="chunking")
        self.pruning.append(pruning)
        cut = self.info.truncate if truncate is None else truncate
        opts = options or EmbedOptions()
        texts = [opts.prompt + item if isinstance(item, str) else item for item in inputs]
        seen = [seen_ids(item, self.info.max_length, cut, opts.truncation_direction, i) for i, item in enumerate(texts)]
        self.calls.append((list(inputs), truncate))
        self.options.append(opts)
        if self.fail_with is not None:
            raise self.fail_with
        if self.overloaded:
            raise Overloaded("The model's queue is full, retry later")
        vectors = [SparseVector(*prune(expected_sparse(ids), top_k=pruning.top_k, threshold=pruning.threshold or 0.0))
                   for ids in seen]
        return SparseResult(vectors, [len(ids) for ids in seen], TIMINGS)

    async def embed_multi(self, inputs: Inputs, outputs: Sequence[Output], *, truncate: bool | None = None,
                          options: EmbedOptions | None = None,
                          pruning: SparseOptions = DEFAULT_SPARSE) -> MultiResult:
        raise wrong_output(self._info, outputs)  # a fake model has one output, as every task but bge_m3

    async def _embed(self, inputs: Inputs, truncate: bool | None, options: EmbedOptions | None) -> EmbedResult:
        opts = options or EmbedOptions()
        self.calls.append((list(inputs), truncate))
        self.options.append(opts)
        if self.fail_with is not None:
            raise self.fail_with
        if self.overloaded:
            raise Overloaded("The model's queue is full, retry later")
        cut = self.info.truncate if truncate is None else truncate
        texts = [opts.prompt + item if isinstance(item, str) else item for item in inputs]
        seen = []
        spans: list[ChunkSpan] | None = None
        if opts.chunking is not None and texts and isinstance(texts[0], str):
            spans = []
            for i, text in enumerate(texts):
                ids, offsets = word_offsets(text)  # type: ignore[arg-type]
                for chunk in chunk_document(ids, offsets, prompt_chars=len(opts.prompt), prefix=[CLS],
                                            suffix=[SEP], max_length=self.info.max_length,
                                            options=opts.chunking):
                    seen.append(chunk.ids)
                    spans.append(ChunkSpan(i, chunk.start, chunk.end))
        else:
            for item in texts:
                bad = [i for i in item if not 0 <= i < VOCAB] if not isinstance(item, str) else []
                if bad:  # the real tokenizer's words
                    raise InvalidInput(f"input[{len(seen)}] has token id {bad[0]} outside the vocabulary "
                                       f"(0..{VOCAB - 1})", param="input")
                seen.append(seen_ids(item, self.info.max_length, cut, opts.truncation_direction, len(seen),
                                     max_tokens=opts.max_tokens, specials=opts.add_special_tokens))
        self.started.set()
        if self.block is not None:
            try:
                await self.block.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        vectors = np.stack([expected_vector(ids, self.info.dimensions, self.info.normalize) for ids in seen])
        counts = [len(ids) for ids in seen]
        if spans is None or opts.chunking is None or opts.chunking.combine == "none":
            return EmbedResult(vectors, counts, TIMINGS, chunks=spans)
        owner = np.array([c.input_index for c in spans])
        weights = np.array(counts)
        combined = np.stack([weighted_mean(vectors[owner == i], list(weights[owner == i]),
                                           normalize=self.info.normalize) for i in range(len(texts))])
        return EmbedResult(combined, [int(weights[owner == i].sum()) for i in range(len(texts))], TIMINGS)

    async def rerank(self, query: str, documents: Sequence[str],
                     options: RerankOptions = DEFAULT_RERANK) -> RerankResult:
        """``task="rerank"``: the logit of a pair is :func:`expected_logit`; no chunking (one window each)."""
        if self._info.task != "rerank":
            raise wrong_task(self.info, "rerank")
        self.rerank_calls.append((query, list(documents), options))
        if self.fail_with is not None:
            raise self.fail_with
        words = query.split()
        limit = self.info.max_length // 2
        if len(words) > limit:
            if not options.truncate_query:  # the real chunker's words
                raise InvalidInput(f"'query' has {len(words)} tokens; the model takes queries of at most {limit} "
                                   f"(half its {self.info.max_length}-token window): shorten it, or let it be cut "
                                   "(truncate_prompt_tokens: -1; TEI: truncate: true)", param="query")
            query = " ".join(words[:limit])
        raw = np.array([expected_logit(query, d) for d in documents], dtype=np.float32)
        counts = [len(text_ids(query)) + len(d.split()) + 1 for d in documents]
        return RerankResult(1 / (1 + np.exp(-raw)), raw, counts, [1] * len(documents), TIMINGS)

    async def classify(self, inputs: Sequence[ClassifyInput], *, truncate: bool | None = None,
                       direction: TruncationDirection = "right") -> ClassifyResult:
        """``task="classify"``: softmax of :func:`expected_class_logits` over :data:`FAKE_LABELS`."""
        if self._info.task != "classify":
            raise wrong_task(self.info, "classify")
        self.classify_calls.append((list(inputs), truncate, direction))
        if self.fail_with is not None:
            raise self.fail_with
        if self.overloaded:
            raise Overloaded("The model's queue is full, retry later")
        cut = self.info.truncate if truncate is None else truncate
        seen = [classify_ids(item, self.info.max_length, cut, i) for i, item in enumerate(inputs)]
        logits = np.stack([expected_class_logits(ids) for ids in seen]) if seen else np.empty((0, 3), np.float32)
        return ClassifyResult(self.info.labels, logits, softmax(logits), [len(ids) for ids in seen], TIMINGS)

    def tokenize(self, texts: Sequence[str], *, add_special_tokens: bool = True,
                 max_length: int | None = None, pad_to_max_length: bool = False,
                 padding_side: str = "right") -> list[list[int]]:
        self.tokenize_calls.append({
            "texts": list(texts), "add_special_tokens": add_special_tokens,
            "max_length": max_length, "pad_to_max_length": pad_to_max_length,
            "padding_side": padding_side})
        out = []
        for text in texts:
            ids = text_ids(text) if add_special_tokens else text_ids(text)[1:-1]
            if max_length is not None:
                ids = ids[:max_length]
                if pad_to_max_length:
                    pad = [PAD] * (max_length - len(ids))
                    ids = pad + ids if padding_side == "left" else ids + pad
            out.append(ids)
        return out

    def detokenize(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        bad = [i for i in ids if not 0 <= i < VOCAB]
        if bad:  # the real tokenizer's words
            raise InvalidInput(f"tokens[{list(ids).index(bad[0])}] is {bad[0]}, outside the vocabulary "
                               f"(0..{VOCAB - 1})", param="tokens")
        return fake_decode(ids)


def fake_decode(ids: Sequence[int]) -> str:
    """The fake's detokenizer: ``w<id>`` per non-special id, space-separated."""
    return " ".join(f"w{i}" for i in ids if i not in (CLS, SEP, PAD))


class FakeRegistry:
    """Models by name with settable states; records start/stop (the lifespan calls them)."""

    def __init__(self, *servables: FakeServable, loading: Sequence[str] = (),
                 failed: dict[str, str] | None = None) -> None:
        self.servables = {s.info.name: s for s in servables}
        self.cache: CacheStats | None = None  # what cache_stats reports (metrics tests set it)
        self.states = {name: ModelStatus(ModelState.AVAILABLE) for name in self.servables}
        self.states.update({name: ModelStatus(ModelState.LOADING) for name in loading})
        for name, error in (failed or {}).items():
            self.states[name] = ModelStatus(ModelState.UNAVAILABLE, error=error)
        self.started = False
        self.stopped = False
        self.observers: Callable[[str], BatchObserver] | None = None

    def set_state(self, name: str, state: ModelState, error: str | None = None) -> None:
        self.states[name] = ModelStatus(state, error=error)

    def get(self, name: str) -> Servable:
        status = self.status(name)
        if status.state is not ModelState.AVAILABLE:
            raise not_ready(name, status)
        return self.servables[name]

    def status(self, name: str) -> ModelStatus:
        if name not in self.states:
            raise ModelNotFound(name)
        return self.states[name]

    def names(self) -> list[str]:
        return list(self.states)

    def available(self) -> list[Servable]:
        return [s for n, s in self.servables.items()
                if self.states[n].state is ModelState.AVAILABLE]

    @property
    def ready(self) -> bool:
        return all(st.state is ModelState.AVAILABLE for st in self.states.values())

    @property
    def settled(self) -> bool:
        return self.started and all(st.state is not ModelState.LOADING for st in self.states.values())

    async def start(self) -> None:
        self.started = True

    async def stop(self, timeout: float | None = None) -> None:
        self.stopped = True

    def observe_batches(self, factory: Callable[[str], BatchObserver]) -> None:
        self.observers = factory  # the fake has no batcher: nothing reports

    def cache_stats(self) -> CacheStats | None:
        return self.cache


    @property
    def reloadable(self) -> bool:
        return False  # models are set by the test; live reload is not offered

    def entries(self) -> list[ModelEntry]:
        return []

    async def add(self, entry: ModelEntry) -> None:
        raise NotImplementedError("the fake registry does not reload")

    async def remove(self, name: str) -> None:
        raise NotImplementedError("the fake registry does not reload")


def make_app(registry: FakeRegistry, *, environ: dict[str, str] | None = None,
             **overrides: Any) -> Starlette:
    """The real app over ``registry``; env API_KEY is ignored unless ``environ`` says so.
    Answers to starlette's TestClient (``Host: testserver``) besides the localhost names."""
    overrides.setdefault("allowed_hosts", f"{TEST_HOST},localhost,127.0.0.1")
    cfg = ServeConfig(config_path=Path("unused/config.json"), **overrides)
    return create_app(cfg, registry, environ=environ or {})
