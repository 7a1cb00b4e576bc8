"""The rerank task (RerankCalculatorOV; ovembed's or OVMS's ``rerank_ov`` export): (query, documents) ->
(query, chunk) pairs (:mod:`.pair_chunker`) -> the model's batcher -> a score per document.

The IR is optimum's ``text-classification`` one; :mod:`ovembed.heads.rerank` appends the score head, whose
parameters come from ovembed_model.json, or for folders OVMS wrote, from the model's files: column 1 of two
logits (OVMS's rule), sigmoid, token types read off the tokenizer's pair template. The window is the graph's
``max_position_embeddings`` when set, else the model's maximum length. Pairs are ordinary documents to the
batcher (one ``[raw, activated]`` row each), so a 1,000-document rerank and embedding requests share one
model's executor the same way. A document scores its best chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import ServeConfig, Task
from ovembed.errors import ConfigError, InvalidInput
from ovembed.graphs import RERANK
from ovembed.heads.rerank import ACTIVATED, RAW, RerankHead, add_rerank_head, separator_for_token_types
from ovembed.layout import TOKENIZER_JSON
from ovembed.rerank_template import RerankTemplate
from ovembed.serving import tracing
from ovembed.serving.api import DEFAULT_RERANK, ModelInfo, RerankOptions, RerankResult, Timings
from ovembed.serving.tasks.base import INLINE_CHARS, NO_DEPS, BaseServable, ServableDeps
from ovembed.serving.tasks.pair_chunker import Chunks, PairChunker
from ovembed.serving.tasks.spec import LoadedModel, Prepared, Source, TaskSpec, resolve_max_length
from ovembed.serving.tasks.template_chunker import TemplateChunker
from ovembed.serving.tasks.tokenizer import ServingTokenizer

if TYPE_CHECKING:
    from ovembed.serving.batching.batcher import Batcher

DEFAULT_MAX_DOC_LENGTH = 16000  # OVMS export_model.py rerank_ov --max_doc_length


class RerankServable(BaseServable):
    """One loaded rerank model: ``rerank`` (and ``tokenize``) for the front ends."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, chunker: PairChunker, batcher: Batcher, *,
                 max_allowed_chunks: int, max_doc_length: int, deps: ServableDeps = NO_DEPS) -> None:
        super().__init__(info, tokenizer, batcher, deps)
        self.chunker = chunker
        self.max_allowed_chunks = max_allowed_chunks
        self.max_doc_length = max_doc_length

    def _pairs(self, query: str, documents: Sequence[str], options: RerankOptions) -> Chunks:
        limit = min(options.max_tokens_per_doc or self.max_doc_length, self.max_doc_length)
        chunks = self.chunker.chunk(query, documents, max_doc_tokens=limit, truncate=options.truncate,
                                    direction=options.direction, truncate_query=options.truncate_query,
                                    instruction=options.instruction)
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
            if len(query) + sum(len(d) for d in documents) > INLINE_CHARS:
                chunks = await asyncio.to_thread(self._pairs, query, documents, options)
            else:
                chunks = self._pairs(query, documents, options)
            tokenized = time.perf_counter()
            tracing.tokenized(started, tokenized, chunks.ids)
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


def _head(record: dict[str, Any], hf_config: dict[str, Any], tokenizer_json: str) -> RerankHead:
    labels = hf_config.get("id2label")
    num_labels = len(labels) if isinstance(labels, dict) else int(hf_config.get("num_labels", 1))
    try:
        recorded = record.get("rerank_head")
        head = RerankHead.from_record(recorded, num_labels=num_labels)
        if recorded is None:
            from tokenizers import Tokenizer

            probe = Tokenizer.from_str(tokenizer_json)
            probe.no_padding()
            probe.no_truncation()
            head = RerankHead(label=head.label, sep_token_id=separator_for_token_types(probe))
    except ValueError as exc:
        raise ConfigError(f"rerank head: {exc}") from None
    return head


def _chunker(record: dict[str, Any], tokenizer_json: str, max_length: int) -> PairChunker:
    """A cross-encoder's pair template, or a decoder reranker's prompt template (applied here, on the server)."""
    recorded = record.get("rerank_template")
    if recorded is None:
        return PairChunker(tokenizer_json, max_length=max_length)
    try:
        template = RerankTemplate.from_record(recorded)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"rerank template: {exc}") from None
    return TemplateChunker(tokenizer_json, max_length=max_length, template=template)


class RerankSpec(TaskSpec, task=Task.RERANK, calculator=RERANK, endpoint="/v3/rerank", label="rerank "):

    def prepare(self, source: Source) -> Prepared:
        graph = source.graph
        max_length = graph.max_position_embeddings or resolve_max_length(source.model_dir, source.record)
        tokenizer_json = (source.tokenizer_dir / TOKENIZER_JSON).read_text(encoding="utf-8")
        head = _head(source.record, source.hf_config, tokenizer_json)
        chunker = _chunker(source.record, tokenizer_json, max_length)
        doc_length = source.record.get("max_doc_length")
        max_doc_length = doc_length if isinstance(doc_length, int) and doc_length > 0 else DEFAULT_MAX_DOC_LENGTH
        return Prepared(graph, max_length, lambda model: add_rerank_head(model, head),
                        {"head": "rerank", **head.describe()},
                        ((1, 8), (4, min(128, max_length))),  # 2 outputs: raw logit, activated score
                        extras={"chunker": chunker, "head": head,
                                "max_allowed_chunks": graph.max_allowed_chunks, "max_doc_length": max_doc_length,
                                "template": "rerank_template" in source.record})

    def info(self, source: Source, prepared: Prepared, *, dimensions: int, device: str, precision: str,
             created: int) -> ModelInfo:
        return super().info(source, prepared, dimensions=1, device=device, precision=precision, created=created)

    def ready_details(self, info: ModelInfo, prepared: Prepared, cfg: ServeConfig) -> str:
        return (f"window {info.max_length} tokens, max_allowed_chunks {prepared.extras['max_allowed_chunks']}, "
                f"head {prepared.extras['head'].describe()}"
                + (", prompt template applied on the server" if prepared.extras["template"] else ""))

    def servable(self, loaded: LoadedModel, batcher: Batcher, deps: ServableDeps) -> BaseServable:
        extras = loaded.extras
        return RerankServable(loaded.info, loaded.tokenizer, extras["chunker"], batcher,
                              max_allowed_chunks=extras["max_allowed_chunks"],
                              max_doc_length=extras["max_doc_length"], deps=replace(deps, cache=None))


SPEC = RerankSpec()
