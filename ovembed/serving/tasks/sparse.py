"""The sparse (SPLADE) task (ovembed's SparseEmbeddingsCalculatorOV): texts -> token ids -> the model's batcher
-> a pruned vocabulary-weight vector each.

The IR is optimum's ``fill-mask`` one (logits ``[batch, seq, vocab]``); :mod:`ovembed.heads.sparse` appends
SPLADE's max(log(1 + relu)) over real tokens, so the executor returns one ``[vocab]`` row per input, which this
servable prunes (top-k, threshold) into (indices, values). Tokenization, prompts, truncation and the cache of
repeated inputs are the base servable's (the cache holds the unpruned row, so any pruning of a cached input is
exact).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ovembed.config import ServeConfig, Task
from ovembed.errors import InvalidInput
from ovembed.graphs import SPARSE
from ovembed.heads.sparse import add_sparse_head, prune
from ovembed.prompts import prompts_from_record
from ovembed.serving import tracing
from ovembed.serving.api import (
    DEFAULT_SPARSE,
    EmbedOptions,
    Inputs,
    ModelInfo,
    SparseOptions,
    SparseResult,
    SparseVector,
    Timings,
)
from ovembed.serving.batching.policy import BatchPolicy
from ovembed.serving.tasks.base import NO_DEPS, BaseServable, ServableDeps, as_documents
from ovembed.serving.tasks.spec import LoadedModel, Prepared, Source, TaskSpec, resolve_max_length
from ovembed.serving.tasks.tokenizer import ServingTokenizer

if TYPE_CHECKING:
    from ovembed.serving.batching.batcher import Batcher

_NO_OPTIONS = EmbedOptions()

# The head reduces [batch, seq, vocab] logits that OpenVINO materialises: a batch's padded tokens x vocab
# x 4 bytes. Keep that under this many bytes by bounding the model's token budget (30522-word BERT
# vocabularies: 2,198 tokens, about --max_batch_tokens' default).
LOGITS_BUDGET_BYTES = 256 * 2**20


def batch_token_budget(max_batch_tokens: int, vocab: int) -> int:
    """The sparse model's token budget: ``--max_batch_tokens``, bounded by :data:`LOGITS_BUDGET_BYTES`."""
    return max(1, min(max_batch_tokens, LOGITS_BUDGET_BYTES // (4 * max(vocab, 1))))


class SparseServable(BaseServable):
    """One loaded sparse model: ``embed_sparse`` (and ``tokenize``) for the front ends."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, batcher: Batcher,
                 deps: ServableDeps = NO_DEPS) -> None:
        super().__init__(info, tokenizer, batcher, deps)
        defaults = info.pruning or DEFAULT_SPARSE  # the graph's top_k / threshold
        self.default_top_k = defaults.top_k
        self.default_threshold = defaults.threshold or 0.0

    async def embed_sparse(self, inputs: Inputs, *, truncate: bool | None = None,
                           options: EmbedOptions | None = None,
                           pruning: SparseOptions = DEFAULT_SPARSE) -> SparseResult:
        opts = options or _NO_OPTIONS
        if opts.chunking is not None:
            raise InvalidInput(f"The model '{self.info.name}' is a sparse model: 'chunking' is for dense "
                               "embeddings (split long documents before sending them)", param="chunking")
        inputs = as_documents(inputs)
        if len(inputs) == 0:
            return SparseResult([], [])
        cut = self.info.truncate if truncate is None else truncate
        with self.in_progress():
            started = time.perf_counter()
            docs = await self._encode(inputs, cut, opts)
            tokenized = time.perf_counter()
            tracing.tokenized(started, tokenized, docs)
            rows, queue_s, infer_s = await self._infer(docs)
        top_k = pruning.top_k if pruning.top_k is not None else self.default_top_k
        threshold = pruning.threshold if pruning.threshold is not None else self.default_threshold
        vectors = [SparseVector(*prune(row, top_k=top_k, threshold=threshold)) for row in rows]
        timings = Timings(tokenization=tokenized - started, queue=queue_s, inference=infer_s)
        return SparseResult(vectors, [len(d) for d in docs], timings)


class SparseSpec(TaskSpec, task=Task.SPARSE, calculator=SPARSE, label="sparse ",
                 endpoint="/embed_sparse, or encoding_format 'sparse' on /v3/embeddings"):

    def prepare(self, source: Source) -> Prepared:
        max_length = resolve_max_length(source.model_dir, source.record)
        return Prepared(source.graph, max_length, add_sparse_head,
                        {"head": "sparse", "activation": "log1p_relu", "pooling": "max"},
                        ((1, 8), (2, min(64, max_length))))  # output width: the vocabulary

    def info(self, source: Source, prepared: Prepared, *, dimensions: int, device: str, precision: str,
             created: int) -> ModelInfo:
        graph = prepared.graph
        return replace(super().info(source, prepared, dimensions=dimensions, device=device, precision=precision,
                                    created=created),
                       truncate=graph.truncate,
                       prompts=prompts_from_record(source.record).with_default(source.cfg.default_prompt_name),
                       pruning=SparseOptions(top_k=graph.top_k, threshold=graph.threshold))

    def ready_details(self, info: ModelInfo, prepared: Prepared, cfg: ServeConfig) -> str:
        graph = prepared.graph
        return (f"vocabulary {info.dimensions}, max_length {info.max_length}, token budget "
                f"{batch_token_budget(cfg.max_batch_tokens, info.dimensions)}, default top_k {graph.top_k or 'all'} "
                f"threshold {graph.threshold:g}")

    def batch_policy(self, policy: BatchPolicy, info: ModelInfo) -> BatchPolicy:
        # bound the [batch, seq, vocab] logits the head reduces
        return replace(policy, max_batch_tokens=batch_token_budget(policy.max_batch_tokens, info.dimensions))

    def servable(self, loaded: LoadedModel, batcher: Batcher, deps: ServableDeps) -> BaseServable:
        return SparseServable(loaded.info, loaded.tokenizer, batcher, replace(deps, max_chunks=None))


SPEC = SparseSpec()
