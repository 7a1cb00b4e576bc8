"""The servable behind every front end: tokenize, batch, infer.

``EmbeddingServable`` implements :class:`ovembed.serving.engine.interface.Servable` on top of a
:class:`~ovembed.serving.engine.tokenizer.ServingTokenizer` and a per-model
:class:`~ovembed.serving.engine.batcher.Batcher`. It counts the ``embed`` calls in progress, so a
version being retired (removed or replaced by a reload) finishes every request that already
resolved it, tokenizing ones included, before its batcher stops (:meth:`close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.heads.st_modules import mark_prompt
from ovembed.serving.engine.batcher import Batcher
from ovembed.serving.engine.cache import EmbeddingCache
from ovembed.serving.engine.interface import (
    DEFAULT_RERANK,
    DEFAULT_SPARSE,
    ChunkSpan,
    EmbedOptions,
    EmbedResult,
    Inputs,
    ModelInfo,
    RerankOptions,
    RerankResult,
    SparseOptions,
    SparseResult,
    Timings,
    wrong_task,
)
from ovembed.serving.engine.passages import chunk_document, weighted_mean
from ovembed.serving.engine.tokenizer import ServingTokenizer, TokenIds

log = logging.getLogger("ovembed.serving.engine")

# Tokenizing more text than this runs in a worker thread so the event loop stays responsive
# (tokenizers releases the GIL); below it the thread hop costs more than it saves.
_INLINE_CHARS = 16_384
_NO_OPTIONS = EmbedOptions()
T = TypeVar("T")


class EmbeddingServable:
    """One loaded model: ``embed`` and ``tokenize`` for the front ends."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, batcher: Batcher, *,
                 cache: EmbeddingCache | None = None, version: int = 1, max_chunks: int | None = None) -> None:
        self._info = info
        self.max_chunks = max_chunks  # --max_chunks_per_input: chunks one input may need
        self._cache = cache  # shared by every model (--cache_bytes); None when off
        self._scope = (info.name, version)
        self.tokenizer = tokenizer
        self.batcher = batcher
        self._active = 0  # embed calls in progress
        self._quiet = asyncio.Event()  # set while none is
        self._quiet.set()

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def scope(self) -> tuple[str, int]:
        """(name, version): this version's part of the cache."""
        return self._scope

    @property
    def queue_depth(self) -> int:
        """Documents waiting in the batcher's queue (not yet sent to the engine)."""
        return self.batcher.queued

    async def close(self, timeout: float | None = None) -> None:
        """Retire this version: let the ``embed`` calls in progress finish (within ``timeout``
        seconds), then stop the batcher (whatever is still queued fails with ModelNotReady)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        # A handler that resolved this version before it was retired starts its embed task
        # on the next loop iteration: let it, so it is counted below.
        await asyncio.sleep(0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), timeout)
        left = None if deadline is None else max(0.0, deadline - loop.time())
        await self.batcher.stop(left)

    @contextlib.contextmanager
    def in_progress(self) -> Iterator[None]:
        """Count a call as in progress: :meth:`close` waits for it before stopping the batcher."""
        self._active += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0:
                self._quiet.set()

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None,
                    options: EmbedOptions | None = None) -> EmbedResult:
        """Texts get the prompt and special tokens; token-id documents are used as given
        (token_type_ids 0). ``options.chunking`` splits long texts (see :mod:`.passages`).

        Raises ``InputTooLong``, ``InvalidInput``, ``Overloaded``; cancelling drops the work.
        """
        opts = options or _NO_OPTIONS
        if isinstance(inputs, str):
            inputs = [inputs]
        elif len(inputs) and isinstance(inputs[0], (int, np.integer)):
            inputs = [inputs]  # type: ignore[assignment]  # one document of token ids
        if len(inputs) == 0:
            return EmbedResult(np.empty((0, self._info.dimensions), dtype=np.float32), [])
        cut = self._info.truncate if truncate is None else truncate
        texts = isinstance(inputs[0], str)
        with self.in_progress():
            started = time.perf_counter()
            spans: list[ChunkSpan] | None = None
            if texts and opts.chunking is not None:
                docs, spans = await self._off_loop(inputs, self._chunk, inputs, opts)  # type: ignore[arg-type]
            else:
                docs = await self._encode(inputs, cut, opts)
            tokenized = time.perf_counter()
            if log.isEnabledFor(logging.DEBUG):  # carries the request id (server.RequestIdFilter)
                log.debug("%s: %d input(s), %d tokens, tokenized in %.1f ms", self._info.name, len(docs),
                          sum(len(d) for d in docs), (tokenized - started) * 1e3)
            rows, queue_s, infer_s = await self._infer(docs)
        timings = Timings(tokenization=tokenized - started, queue=queue_s, inference=infer_s)
        counts = [len(d) for d in docs]
        if spans is None:
            return EmbedResult(rows, counts, timings)
        assert opts.chunking is not None
        if opts.chunking.combine == "none":
            return EmbedResult(rows, counts, timings, chunks=spans)
        owner = np.array([c.input_index for c in spans])
        combined = np.stack([weighted_mean(rows[owner == i], [n for n, o in zip(counts, owner, strict=True)
                                                              if o == i], normalize=self._info.normalize)
                             for i in range(len(inputs))])
        totals = [int(sum(n for n, o in zip(counts, owner, strict=True) if o == i)) for i in range(len(inputs))]
        return EmbedResult(combined, totals, timings)

    async def _infer(self, docs: Sequence[TokenIds]) -> tuple[np.ndarray, float, float]:
        """Rows for ``docs``: cached ones from the cache, the others from the batcher (then
        cached). Returns (rows, queue seconds, inference seconds)."""
        cache = self._cache
        if cache is None:
            result = await self.batcher.submit(docs)
            return result.embeddings, result.queue_seconds, result.inference_seconds
        keys = [cache.key(self._scope, self._info.task, d) for d in docs]
        found = [cache.get(k) for k in keys]
        missing = [i for i, hit in enumerate(found) if hit is None]
        rows = np.empty((len(docs), self._info.dimensions), dtype=np.float32)
        queue_s = infer_s = 0.0
        if missing:
            result = await self.batcher.submit([docs[i] for i in missing])
            queue_s, infer_s = result.queue_seconds, result.inference_seconds
            for j, i in enumerate(missing):
                rows[i] = result.embeddings[j]
                cache.put(keys[i], result.embeddings[j], len(docs[i]))
        for i, hit in enumerate(found):
            if hit is not None:
                rows[i] = hit[0]
        return rows, queue_s, infer_s

    async def _off_loop(self, texts: Sequence[str], fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread for large inputs (tokenizers releases the GIL)."""
        if sum(len(t) for t in texts if isinstance(t, str)) > _INLINE_CHARS:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    def _chunk(self, texts: Sequence[str], opts: EmbedOptions) -> tuple[list[TokenIds], list[ChunkSpan]]:
        assert opts.chunking is not None
        prefix, suffix = self.tokenizer.affixes
        docs: list[TokenIds] = []
        spans: list[ChunkSpan] = []
        encoded = self.tokenizer.encode_with_offsets([opts.prompt + t for t in texts])
        for i, (ids, offsets) in enumerate(encoded):
            for chunk in chunk_document(ids, offsets, prompt_chars=len(opts.prompt), prefix=prefix,
                                        suffix=suffix, max_length=self._info.max_length,
                                        options=opts.chunking, server_max_chunks=self.max_chunks):
                docs.append(np.asarray(chunk.ids, dtype=np.int64))
                spans.append(ChunkSpan(i, chunk.start, chunk.end))
        return self._mark_prompt(docs, opts.prompt), spans

    async def _encode(self, inputs: Inputs, truncate: bool, opts: EmbedOptions) -> list[TokenIds]:
        first = inputs[0]
        if isinstance(first, str):
            texts: Sequence[str] = inputs  # type: ignore[assignment]
            if opts.prompt:
                texts = [opts.prompt + t if isinstance(t, str) else t for t in texts]
            docs: list[TokenIds] = await self._off_loop(texts, functools.partial(
                self.tokenizer.encode_texts, truncate=truncate, direction=opts.truncation_direction), texts)
            return self._mark_prompt(docs, opts.prompt)
        if isinstance(first, (bytes, dict)) or not isinstance(first, Sequence | np.ndarray):
            raise InvalidInput("input must be strings or lists of token ids", param="input")
        return self.tokenizer.encode_ids(inputs, truncate=truncate)  # type: ignore[arg-type]

    def _mark_prompt(self, docs: list[TokenIds], prompt: str) -> list[TokenIds]:
        """``docs`` (each ``prefix + prompt + ...``) with the prompt marked when the head pools no prompt
        token; the count is sentence-transformers': the prompt tokenized alone, less a trailing special."""
        if not prompt or self._info.pool_prompt:
            return docs
        ids = self.tokenizer.encode_texts([prompt], truncate=True)[0]
        count = len(ids) - 1 if self.tokenizer.affixes[1] else len(ids)
        return [mark_prompt(np.asarray(d, dtype=np.int64)[None, :], np.ones((1, len(d)), np.int64), count)[0]
                for d in docs]

    async def rerank(self, query: str, documents: Sequence[str],
                     options: RerankOptions = DEFAULT_RERANK) -> RerankResult:
        raise wrong_task(self._info, "rerank")

    async def embed_sparse(self, inputs: Inputs, *, truncate: bool | None = None,
                           options: EmbedOptions | None = None,
                           pruning: SparseOptions = DEFAULT_SPARSE) -> SparseResult:
        raise wrong_task(self._info, "sparse")

    def tokenize(self, texts: Sequence[str], *, add_special_tokens: bool = True,
                 max_length: int | None = None, pad_to_max_length: bool = False,
                 padding_side: str = "right") -> list[list[int]]:
        if isinstance(texts, str):
            texts = [texts]
        return self.tokenizer.tokenize(texts, add_special_tokens=add_special_tokens,
                                       max_length=max_length, pad_to_max_length=pad_to_max_length,
                                       padding_side=padding_side)
