"""The bge_m3 task (ovembed's BgeM3EmbeddingsCalculatorOV): BGE-M3's dense, sparse and multi-vector outputs of one
inference. Texts -> token ids -> the model's batcher -> each document's packed rows (:mod:`ovembed.heads.bge_m3`:
row 0 the dense vector, then per token its colbert vector and sparse weight) -> whichever outputs the request asks.

The model answers every request those outputs serve (``ModelInfo.serves``): ``embed`` (dense, ``/v3/embeddings``),
``embed_sparse`` (``/embed_sparse``: each token id's largest weight, the special tokens dropped),
``embed_tokens`` (``/embed_all``: the colbert vectors of every token but the first, as FlagEmbedding keeps them),
``embed_multi`` (several at once: ``output`` on ``/v3/embeddings``) and ``rerank`` (FlagEmbedding's combined score,
weights per request). Queries and documents are encoded alike (BGE-M3 has no markers).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import ServeConfig, Task
from ovembed.errors import ConfigError, InvalidInput
from ovembed.graphs import BGE_M3
from ovembed.heads import bge_m3 as heads
from ovembed.prompts import prompts_from_record
from ovembed.serving.api import (
    DEFAULT_RERANK,
    DEFAULT_SPARSE,
    OUTPUTS,
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
    SparseVector,
    Timings,
    TokenIds,
    TokenKind,
    TokenResult,
)
from ovembed.serving.tasks.base import NO_DEPS, BaseServable, ServableDeps, as_documents, refuse_instruction
from ovembed.serving.tasks.spec import LoadedModel, Prepared, Source, TaskSpec, resolve_max_length
from ovembed.serving.tasks.tokenizer import ServingTokenizer

if TYPE_CHECKING:
    from ovembed.serving.batching.batcher import Batcher

_NO_OPTIONS = EmbedOptions()
RECORD_KEY = "bge_m3"  # the record's (ovembed_model.json) section that describes the heads


@dataclass(frozen=True)
class M3Settings:
    """The heads' sizes and the ids the sparse output drops (recorded at export under ``bge_m3``)."""

    dense: int
    colbert: int
    unused_ids: frozenset[int]

    @classmethod
    def from_record(cls, record: dict[str, Any], where: str) -> M3Settings:
        section = record.get(RECORD_KEY)
        if not isinstance(section, dict) or not isinstance(section.get("dense_dimensions"), int) \
                or not isinstance(section.get("colbert_dimensions"), int):
            raise ConfigError(f"{where}: a bge_m3 model needs the 'bge_m3' section ovembed export writes in its "
                              "ovembed_model.json")
        return cls(section["dense_dimensions"], section["colbert_dimensions"],
                   frozenset(int(i) for i in section.get("unused_token_ids") or ()))


@dataclass
class _Decoded:
    docs: list[TokenIds]
    dense: np.ndarray  # [n, hidden]
    colbert: list[np.ndarray]
    weights: list[np.ndarray]  # per token 1..n-1
    timings: Timings


class BgeM3Servable(BaseServable):
    """One loaded bge_m3 model: dense, sparse, token vectors, several at once, and rerank by the combined score."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, batcher: Batcher,
                 deps: ServableDeps = NO_DEPS, settings: M3Settings | None = None) -> None:
        super().__init__(info, tokenizer, batcher, deps)
        self.settings = settings or M3Settings(info.dimensions, info.dimensions, frozenset())
        defaults = info.pruning or DEFAULT_SPARSE
        self.default_top_k, self.default_threshold = defaults.top_k, defaults.threshold or 0.0

    async def _run(self, inputs: Inputs, truncate: bool | None, opts: EmbedOptions) -> _Decoded:
        """Every input through the model in one submission to the batcher, unpacked."""
        if opts.chunking is not None:
            raise InvalidInput(f"The model '{self.info.name}' is a bge_m3 model: 'chunking' is not supported "
                               "(split long documents before sending them)", param="chunking")
        cut = self.info.truncate if truncate is None else truncate
        with self.in_progress():
            started = time.perf_counter()
            docs = await self._encode(inputs, cut, opts)
            tokenized = time.perf_counter()
            result = await self.batcher.submit(docs)
        s = self.settings
        parts = [heads.unpack(result.embeddings[i], s.dense, s.colbert) for i in range(len(docs))]
        dense = np.stack([p[0] for p in parts]) if parts else np.zeros((0, s.dense), dtype=np.float32)
        return _Decoded(docs, dense, [p[1] for p in parts], [p[2] for p in parts],
                        Timings(tokenized - started, result.queue_seconds, result.inference_seconds))

    def _sparse(self, doc: TokenIds, weights: np.ndarray, pruning: SparseOptions) -> SparseVector:
        ids, values = heads.lexical_weights(np.asarray(doc, dtype=np.int64)[1:], weights, self.settings.unused_ids)
        top_k = pruning.top_k if pruning.top_k is not None else self.default_top_k
        threshold = pruning.threshold if pruning.threshold is not None else self.default_threshold
        return SparseVector(*heads.prune(ids, values, top_k=top_k, threshold=threshold))

    async def embed_multi(self, inputs: Inputs, outputs: Sequence[Output], *, truncate: bool | None = None,
                          options: EmbedOptions | None = None,
                          pruning: SparseOptions = DEFAULT_SPARSE) -> MultiResult:
        unknown = [o for o in outputs if o not in OUTPUTS]
        if unknown or not outputs:
            raise InvalidInput(f"'output' must list some of {', '.join(OUTPUTS)}", param="output")
        inputs = as_documents(inputs)
        if len(inputs) == 0:
            return MultiResult(np.zeros((0, self.settings.dense), dtype=np.float32) if "dense" in outputs else None,
                               [] if "sparse" in outputs else None, [] if "multivector" in outputs else None, [])
        got = await self._run(inputs, truncate, options or _NO_OPTIONS)
        sparse = [self._sparse(d, w, pruning) for d, w in zip(got.docs, got.weights, strict=True)]
        return MultiResult(got.dense if "dense" in outputs else None, sparse if "sparse" in outputs else None,
                           got.colbert if "multivector" in outputs else None, [len(d) for d in got.docs], got.timings)

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None,
                    options: EmbedOptions | None = None) -> EmbedResult:
        result = await self.embed_multi(inputs, ("dense",), truncate=truncate, options=options)
        assert result.dense is not None
        return EmbedResult(result.dense, result.token_counts, result.timings)

    async def embed_sparse(self, inputs: Inputs, *, truncate: bool | None = None,
                           options: EmbedOptions | None = None,
                           pruning: SparseOptions = DEFAULT_SPARSE) -> SparseResult:
        result = await self.embed_multi(inputs, ("sparse",), truncate=truncate, options=options, pruning=pruning)
        return SparseResult(result.sparse or [], result.token_counts, result.timings)

    async def embed_tokens(self, inputs: Inputs, *, kind: TokenKind = "document", truncate: bool | None = None,
                           options: EmbedOptions | None = None) -> TokenResult:
        result = await self.embed_multi(inputs, ("multivector",), truncate=truncate, options=options)
        return TokenResult(result.multivector or [], result.token_counts, result.timings)

    async def rerank(self, query: str, documents: Sequence[str],
                     options: RerankOptions = DEFAULT_RERANK) -> RerankResult:
        """FlagEmbedding's ``compute_score`` combination of the dense, sparse and colbert scores of the query and
        each document (weights ``options.weights``, else BGE-M3's [0.4, 0.2, 0.4]); documents longer than the window
        are truncated (``options.direction``), as the reference encodes them."""
        refuse_instruction(options, "a BGE-M3 model")
        if len(documents) == 0:
            empty = np.zeros(0, dtype=np.float32)
            return RerankResult(empty, empty, [], [])
        got = await self._run([query, *documents], True, EmbedOptions(truncation_direction=options.direction))
        started = time.perf_counter()
        dense = got.dense[1:] @ got.dense[0]
        q_ids, q_w = heads.lexical_weights(np.asarray(got.docs[0])[1:], got.weights[0], self.settings.unused_ids)
        sparse = np.array([heads.lexical_score(q_ids, q_w, *heads.lexical_weights(
            np.asarray(d)[1:], w, self.settings.unused_ids)) for d, w in zip(got.docs[1:], got.weights[1:],
                                                                             strict=True)], dtype=np.float32)
        colbert = heads.colbert_scores(got.colbert[0], got.colbert[1:])
        scores = heads.combined(dense, sparse, colbert, options.weights or heads.DEFAULT_WEIGHTS)
        got.timings.inference += time.perf_counter() - started
        counts = [len(d) for d in got.docs[1:]]
        return RerankResult(scores, scores.copy(), counts, [1] * len(counts), got.timings)


class BgeM3Spec(TaskSpec, task=Task.BGE_M3, calculator=BGE_M3, label="bge_m3 ",
                endpoint="/v3/embeddings (dense; 'output' for several), /embed_sparse, /embed_all or /v3/rerank"):

    def prepare(self, source: Source) -> Prepared:
        settings = M3Settings.from_record(source.record, str(source.model_dir))
        window = resolve_max_length(source.model_dir, source.record)
        return Prepared(source.graph, window, heads.add_packed_head, {"head": "bge_m3_packed"},
                        ((1, 8), (2, min(64, window))), extras={"settings": settings})

    def info(self, source: Source, prepared: Prepared, *, dimensions: int, device: str, precision: str,
             created: int) -> ModelInfo:
        settings: M3Settings = prepared.extras["settings"]
        return replace(super().info(source, prepared, dimensions=settings.dense, device=device, precision=precision,
                                    created=created),
                       normalize=True, truncate=prepared.graph.truncate,
                       serves=(Task.EMBEDDINGS, Task.SPARSE, Task.TOKEN_EMBED, Task.RERANK),
                       prompts=prompts_from_record(source.record).with_default(source.cfg.default_prompt_name))

    def ready_details(self, info: ModelInfo, prepared: Prepared, cfg: ServeConfig) -> str:
        s: M3Settings = prepared.extras["settings"]
        return (f"dense {s.dense}, colbert {s.colbert} per token, sparse over the vocabulary, max_length "
                f"{info.max_length}")

    def servable(self, loaded: LoadedModel, batcher: Batcher, deps: ServableDeps) -> BaseServable:
        return BgeM3Servable(loaded.info, loaded.tokenizer, batcher, replace(deps, max_chunks=None),
                             loaded.extras.get("settings"))


SPEC = BgeM3Spec()
