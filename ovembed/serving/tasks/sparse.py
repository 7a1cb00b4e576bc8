"""The sparse (SPLADE) servable: texts -> token ids -> the model's batcher -> a pruned vocabulary-weight vector each.

Inputs are ordinary documents to the :class:`~ovembed.serving.batching.batcher.Batcher`; the in-graph head
(:mod:`ovembed.heads.sparse`) returns one ``[vocab]`` row per input, which this servable prunes (top-k,
threshold) into (indices, values). Tokenization, prompts, truncation and the cache of repeated inputs are
the embeddings servable's (the cache holds the unpruned row, so any pruning of a cached input is exact).
"""

from __future__ import annotations

import time

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.heads.sparse import prune
from ovembed.serving.api import (
    DEFAULT_SPARSE,
    EmbedOptions,
    EmbedResult,
    Inputs,
    ModelInfo,
    SparseOptions,
    SparseResult,
    SparseVector,
    Timings,
    wrong_task,
)
from ovembed.serving.batching.batcher import Batcher
from ovembed.serving.tasks.cache import EmbeddingCache
from ovembed.serving.tasks.embeddings import EmbeddingServable
from ovembed.serving.tasks.tokenizer import ServingTokenizer

_NO_OPTIONS = EmbedOptions()


class SparseServable(EmbeddingServable):
    """One loaded sparse model; lifecycle (close, in-progress counting) as for embeddings."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, batcher: Batcher, *,
                 cache: EmbeddingCache | None = None, version: int = 1) -> None:
        super().__init__(info, tokenizer, batcher, cache=cache, version=version)
        defaults = info.pruning or DEFAULT_SPARSE  # the graph's top_k / threshold
        self.default_top_k = defaults.top_k
        self.default_threshold = defaults.threshold or 0.0

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None,
                    options: EmbedOptions | None = None) -> EmbedResult:
        raise wrong_task(self.info, "embeddings")

    async def embed_sparse(self, inputs: Inputs, *, truncate: bool | None = None,
                           options: EmbedOptions | None = None,
                           pruning: SparseOptions = DEFAULT_SPARSE) -> SparseResult:
        opts = options or _NO_OPTIONS
        if opts.chunking is not None:
            raise InvalidInput(f"The model '{self.info.name}' is a sparse model: 'chunking' is for dense "
                               "embeddings (split long documents before sending them)", param="chunking")
        if isinstance(inputs, str):
            inputs = [inputs]
        elif len(inputs) and isinstance(inputs[0], (int, np.integer)):
            inputs = [inputs]  # type: ignore[assignment]  # one document of token ids
        if len(inputs) == 0:
            return SparseResult([], [])
        cut = self.info.truncate if truncate is None else truncate
        with self.in_progress():
            started = time.perf_counter()
            docs = await self._encode(inputs, cut, opts)
            tokenized = time.perf_counter()
            rows, queue_s, infer_s = await self._infer(docs)
        top_k = pruning.top_k if pruning.top_k is not None else self.default_top_k
        threshold = pruning.threshold if pruning.threshold is not None else self.default_threshold
        vectors = [SparseVector(*prune(row, top_k=top_k, threshold=threshold)) for row in rows]
        timings = Timings(tokenization=tokenized - started, queue=queue_s, inference=infer_s)
        return SparseResult(vectors, [len(d) for d in docs], timings)
