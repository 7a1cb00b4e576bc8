"""The rerank servable: (query, documents) -> chunks -> the model's batcher -> a score per document.

Chunks are ordinary documents to the :class:`~ovembed.serving.engine.batcher.Batcher` (ids in,
one ``[raw, activated]`` row out from the in-graph head of :mod:`ovembed.heads.rerank`), so a
1,000-document rerank and embedding requests share one model's engine the same way. A document
scores its best chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.heads.rerank import ACTIVATED, RAW
from ovembed.serving.engine.batcher import Batcher
from ovembed.serving.engine.chunking import Chunks, PairChunker
from ovembed.serving.engine.interface import (
    DEFAULT_RERANK,
    EmbedOptions,
    EmbedResult,
    Inputs,
    ModelInfo,
    RerankOptions,
    RerankResult,
    Timings,
    wrong_task,
)
from ovembed.serving.engine.servable import EmbeddingServable
from ovembed.serving.engine.tokenizer import ServingTokenizer

_INLINE_CHARS = 16_384  # tokenize larger requests in a worker thread (as embeddings do)


class RerankServable(EmbeddingServable):
    """One loaded rerank model; lifecycle (close, in-progress counting) as for embeddings."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, chunker: PairChunker, batcher: Batcher, *,
                 max_allowed_chunks: int, max_doc_length: int) -> None:
        super().__init__(info, tokenizer, batcher)
        self.chunker = chunker
        self.max_allowed_chunks = max_allowed_chunks
        self.max_doc_length = max_doc_length

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None,
                    options: EmbedOptions | None = None) -> EmbedResult:
        raise wrong_task(self.info, "embeddings")

    def _chunk(self, query: str, documents: Sequence[str], options: RerankOptions) -> Chunks:
        limit = min(options.max_tokens_per_doc or self.max_doc_length, self.max_doc_length)
        chunks = self.chunker.chunk(query, documents, max_doc_tokens=limit, truncate=options.truncate,
                                    direction=options.direction, truncate_query=options.truncate_query)
        if len(chunks.ids) > self.max_allowed_chunks:
            raise InvalidInput(
                f"The {len(documents)} documents need {len(chunks.ids)} (query, chunk) pairs of at most "
                f"{self.info.max_length} tokens, more than the model's max_allowed_chunks "
                f"({self.max_allowed_chunks}): send fewer or shorter documents, or lower max_tokens_per_doc",
                param="documents")
        return chunks

    async def rerank(self, query: str, documents: Sequence[str],
                     options: RerankOptions = DEFAULT_RERANK) -> RerankResult:
        if not documents:
            empty = np.empty(0, dtype=np.float32)
            return RerankResult(empty, empty, [], [])
        with self.in_progress():
            started = time.perf_counter()
            if len(query) + sum(len(d) for d in documents) > _INLINE_CHARS:
                chunks = await asyncio.to_thread(self._chunk, query, documents, options)
            else:
                chunks = self._chunk(query, documents, options)
            tokenized = time.perf_counter()
            result = await self.batcher.submit(chunks.ids)
        rows = result.embeddings  # [n_chunks, 2]
        starts = np.concatenate(([0], np.cumsum(chunks.chunk_counts)[:-1])).astype(np.int64)
        best = np.maximum.reduceat(rows[:, RAW], starts)  # chunks are grouped by document, in order
        # The activation is monotonic: the best chunk by logit is the best by score too.
        activated = np.maximum.reduceat(rows[:, ACTIVATED], starts)
        timings = Timings(tokenization=tokenized - started, queue=result.queue_seconds,
                          inference=result.inference_seconds)
        return RerankResult(activated.astype(np.float32), best.astype(np.float32), chunks.token_counts(),
                            list(chunks.chunk_counts), timings)
