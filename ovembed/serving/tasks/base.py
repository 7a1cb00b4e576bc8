"""What every task's servable shares: tokenizing (off the event loop when large), the batcher and the cache of
repeated inputs, counting the calls in progress, and retiring a version.

A task's servable (:mod:`.embeddings`, :mod:`.rerank`, :mod:`.sparse`) subclasses :class:`BaseServable` and
implements its own method of :class:`ovembed.serving.api.Servable`; the others answer with the wrong-task
error naming where the model's own task is served. A version being retired (removed or replaced by a reload)
finishes every call that already resolved it, tokenizing ones included, before its batcher stops
(:meth:`BaseServable.close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.serving.api import (
    DEFAULT_RERANK,
    DEFAULT_SPARSE,
    ClassifyInput,
    ClassifyResult,
    EmbedOptions,
    EmbedResult,
    Inputs,
    ModelInfo,
    MultiResult,
    Output,
    RerankOptions,
    RerankResult,
    SparseOptions,
    SparseResult,
    TokenIds,
    TokenKind,
    TokenResult,
    TruncationDirection,
    wrong_output,
    wrong_task,
)
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.tasks.cache import EmbeddingCache
from ovembed.serving.tasks.tokenizer import ServingTokenizer

# Tokenizing more text than this runs in a worker thread so the event loop stays responsive
# (tokenizers releases the GIL); below it the thread hop costs more than it saves.
INLINE_CHARS = 16_384
T = TypeVar("T")


@dataclass(frozen=True)
class ServableDeps:
    """What the registry gives every servable besides its model and batcher."""

    cache: EmbeddingCache | None = None  # shared by every model (--cache_bytes); None when off
    version: int = 1  # the model version (its part of the cache)
    max_chunks: int | None = None  # --max_chunks_per_input: chunks one input may need


NO_DEPS = ServableDeps()


def refuse_instruction(options: RerankOptions, what: str) -> None:
    """A rerank request's ``instruction`` is for decoder rerankers (a prompt template): a 400 elsewhere."""
    if options.instruction is not None:
        raise InvalidInput(f"'instruction' applies to decoder rerankers (a prompt template); this model is {what} "
                           "and takes none", param="instruction")


class BaseServable:
    """One loaded model of any task: lifecycle, tokenize, and the path to the batcher."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, batcher: Batcher,
                 deps: ServableDeps = NO_DEPS) -> None:
        self._info = info
        self._cache = deps.cache
        self._scope = (info.name, deps.version)
        self.tokenizer = tokenizer
        self.batcher = batcher
        self._active = 0  # calls in progress
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

    @property
    def busy(self) -> bool:
        """A call is in progress or a batch is queued or running (an idle unload waits for neither)."""
        return self._active > 0 or self.batcher.queued > 0 or self.batcher.in_flight > 0

    async def close(self, timeout: float | None = None) -> None:
        """Retire this version: let the calls in progress finish (within ``timeout`` seconds),
        then stop the batcher (whatever is still queued fails with ModelNotReady)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        # A handler that resolved this version before it was retired starts its task
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

    # -- the task methods: each task's servable implements its own ------------------------------

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None,
                    options: EmbedOptions | None = None) -> EmbedResult:
        raise wrong_task(self._info, "embeddings")

    async def rerank(self, query: str, documents: Sequence[str],
                     options: RerankOptions = DEFAULT_RERANK) -> RerankResult:
        raise wrong_task(self._info, "rerank")

    async def embed_sparse(self, inputs: Inputs, *, truncate: bool | None = None,
                           options: EmbedOptions | None = None,
                           pruning: SparseOptions = DEFAULT_SPARSE) -> SparseResult:
        raise wrong_task(self._info, "sparse")

    async def embed_tokens(self, inputs: Inputs, *, kind: TokenKind = "document", truncate: bool | None = None,
                           options: EmbedOptions | None = None) -> TokenResult:
        raise wrong_task(self._info, "token_embed")

    async def classify(self, inputs: Sequence[ClassifyInput], *, truncate: bool | None = None,
                       direction: TruncationDirection = "right") -> ClassifyResult:
        raise wrong_task(self._info, "classify")

    async def embed_multi(self, inputs: Inputs, outputs: Sequence[Output], *, truncate: bool | None = None,
                          options: EmbedOptions | None = None,
                          pruning: SparseOptions = DEFAULT_SPARSE) -> MultiResult:
        raise wrong_output(self._info, outputs)

    def tokenize(self, texts: Sequence[str], *, add_special_tokens: bool = True,
                 max_length: int | None = None, pad_to_max_length: bool = False,
                 padding_side: str = "right") -> list[list[int]]:
        if isinstance(texts, str):
            texts = [texts]
        return self.tokenizer.tokenize(texts, add_special_tokens=add_special_tokens,
                                       max_length=max_length, pad_to_max_length=pad_to_max_length,
                                       padding_side=padding_side)

    def detokenize(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    # -- shared by the tasks ---------------------------------------------------------------

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
        if sum(len(t) for t in texts if isinstance(t, str)) > INLINE_CHARS:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    async def _encode(self, inputs: Inputs, truncate: bool, opts: EmbedOptions) -> list[TokenIds]:
        first = inputs[0]
        if isinstance(first, str):
            texts: Sequence[str] = inputs  # type: ignore[assignment]
            if opts.prompt:
                texts = [opts.prompt + t if isinstance(t, str) else t for t in texts]
            return await self._off_loop(texts, functools.partial(
                self.tokenizer.encode_texts, truncate=truncate, direction=opts.truncation_direction,
                max_tokens=opts.max_tokens, add_special_tokens=opts.add_special_tokens), texts)
        if isinstance(first, (bytes, dict)) or not isinstance(first, Sequence | np.ndarray):
            raise InvalidInput("input must be strings or lists of token ids", param="input")
        return self.tokenizer.encode_ids(inputs, truncate=truncate)  # type: ignore[arg-type]


def as_documents(inputs: Inputs) -> Inputs:
    """One string or one token-id document as a list of one; a list as it is."""
    if isinstance(inputs, str):
        return [inputs]
    if len(inputs) and isinstance(inputs[0], (int, np.integer)):
        return [inputs]  # type: ignore[list-item]  # one document of token ids
    return inputs
