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
import logging
import time
from collections.abc import Iterator, Sequence

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.serving.engine.batcher import Batcher
from ovembed.serving.engine.interface import (
    DEFAULT_RERANK,
    EmbedResult,
    Inputs,
    ModelInfo,
    RerankOptions,
    RerankResult,
    Timings,
    wrong_task,
)
from ovembed.serving.engine.tokenizer import ServingTokenizer, TokenIds

log = logging.getLogger("ovembed.serving.engine")

# Tokenizing more text than this runs in a worker thread so the event loop stays responsive
# (tokenizers releases the GIL); below it the thread hop costs more than it saves.
_INLINE_CHARS = 16_384


class EmbeddingServable:
    """One loaded model: ``embed`` and ``tokenize`` for the front ends."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, batcher: Batcher) -> None:
        self._info = info
        self.tokenizer = tokenizer
        self.batcher = batcher
        self._active = 0  # embed calls in progress
        self._quiet = asyncio.Event()  # set while none is
        self._quiet.set()

    @property
    def info(self) -> ModelInfo:
        return self._info

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

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None) -> EmbedResult:
        """Texts get special tokens; token-id documents are used as given (token_type_ids 0).

        Raises ``InputTooLong``, ``InvalidInput``, ``Overloaded``; cancelling drops the work.
        """
        if isinstance(inputs, str):
            inputs = [inputs]
        elif len(inputs) and isinstance(inputs[0], (int, np.integer)):
            inputs = [inputs]  # type: ignore[assignment]  # one document of token ids
        if len(inputs) == 0:
            return EmbedResult(np.empty((0, self._info.dimensions), dtype=np.float32), [])
        cut = self._info.truncate if truncate is None else truncate
        with self.in_progress():
            started = time.perf_counter()
            docs = await self._encode(inputs, cut)
            tokenized = time.perf_counter()
            if log.isEnabledFor(logging.DEBUG):  # carries the request id (server.RequestIdFilter)
                log.debug("%s: %d input(s), %d tokens, tokenized in %.1f ms", self._info.name, len(docs),
                          sum(len(d) for d in docs), (tokenized - started) * 1e3)
            result = await self.batcher.submit(docs)
        timings = Timings(tokenization=tokenized - started, queue=result.queue_seconds,
                          inference=result.inference_seconds)
        return EmbedResult(result.embeddings, [len(d) for d in docs], timings)

    async def _encode(self, inputs: Inputs, truncate: bool) -> list[TokenIds]:
        first = inputs[0]
        if isinstance(first, str):
            texts: Sequence[str] = inputs  # type: ignore[assignment]
            if sum(len(t) for t in texts if isinstance(t, str)) > _INLINE_CHARS:
                return await asyncio.to_thread(self.tokenizer.encode_texts, texts,
                                               truncate=truncate)
            return self.tokenizer.encode_texts(texts, truncate=truncate)
        if isinstance(first, (bytes, dict)) or not isinstance(first, Sequence | np.ndarray):
            raise InvalidInput("input must be strings or lists of token ids", param="input")
        return self.tokenizer.encode_ids(inputs, truncate=truncate)  # type: ignore[arg-type]

    async def rerank(self, query: str, documents: Sequence[str],
                     options: RerankOptions = DEFAULT_RERANK) -> RerankResult:
        raise wrong_task(self._info, "rerank")

    def tokenize(self, texts: Sequence[str], *, add_special_tokens: bool = True,
                 max_length: int | None = None, pad_to_max_length: bool = False,
                 padding_side: str = "right") -> list[list[int]]:
        if isinstance(texts, str):
            texts = [texts]
        return self.tokenizer.tokenize(texts, add_special_tokens=add_special_tokens,
                                       max_length=max_length, pad_to_max_length=pad_to_max_length,
                                       padding_side=padding_side)
