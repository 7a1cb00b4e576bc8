"""The token-vector task (late interaction, ColBERT-style; ovembed's TokenEmbeddingsCalculatorOV): texts -> token
ids with the query or document marker -> the model's batcher -> one L2-normalised vector per token; and rerank by
MaxSim over those vectors (no second model).

The exported IR already holds the projection and the normalisation (:mod:`ovembed.heads.token_embed`); the
executor returns ``[batch, seq, dim]`` and the batcher hands each document its real tokens' rows (padding
excluded). As the pylate reference does: the marker id goes right after the first token (``[CLS] [Q] ...``), the
document skiplist (punctuation ids the model's config lists) is dropped from document vectors, queries keep every
token, and ``[CLS]``/``[SEP]`` are kept. The window (``info.max_length``) leaves room for the marker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ovembed.config import ServeConfig, Task
from ovembed.errors import InvalidInput
from ovembed.graphs import TOKEN_EMBED
from ovembed.heads.muvera import params_from_record
from ovembed.heads.token_embed import add_token_head, maxsim
from ovembed.prompts import prompts_from_record
from ovembed.serving import tracing
from ovembed.serving.api import (
    DEFAULT_RERANK,
    EmbedOptions,
    Inputs,
    ModelInfo,
    RerankOptions,
    RerankResult,
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
RECORD_KEY = "token_embed"  # the record's (ovembed_model.json) section that describes the model


@dataclass(frozen=True)
class QueryExpansion:
    """sentence-transformers' query expansion (attend=true): queries padded with ``token_id`` ([MASK]) to
    ``length`` tokens, marker and special tokens included; ``fixed`` also cuts longer queries to ``length``."""

    strategy: str  # "fixed" or "min"
    length: int
    token_id: int

    @classmethod
    def from_record(cls, section: object) -> QueryExpansion | None:
        if not isinstance(section, dict):
            return None
        return cls(str(section.get("strategy")), int(section["length"]), int(section["token_id"]))

    def expand(self, doc: TokenIds) -> TokenIds:
        ids = np.asarray(doc, dtype=np.int64)
        if len(ids) >= self.length:
            return ids
        return np.concatenate((ids, np.full(self.length - len(ids), self.token_id, dtype=np.int64)))


@dataclass(frozen=True)
class TokenSettings:
    """What the model's config says about its inputs (recorded at export under ``token_embed``)."""

    query_marker_id: int | None = None
    document_marker_id: int | None = None
    skiplist_ids: frozenset[int] = frozenset()
    expansion: QueryExpansion | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TokenSettings:
        section = record.get(RECORD_KEY) or {}
        q, d = section.get("query_marker_id"), section.get("document_marker_id")
        return cls(q if isinstance(q, int) else None, d if isinstance(d, int) else None,
                   frozenset(int(i) for i in section.get("skiplist_ids") or ()),
                   QueryExpansion.from_record(section.get("query_expansion")))

    @property
    def markers(self) -> int:
        """Tokens a marker adds to an input (0 or 1)."""
        return int(self.query_marker_id is not None or self.document_marker_id is not None)


def with_marker(doc: TokenIds, marker: int | None) -> TokenIds:
    """``doc`` with ``marker`` after its first token (pylate's ``insert_prefix_token``)."""
    if marker is None or len(doc) == 0:
        return doc
    ids = np.asarray(doc, dtype=np.int64)
    return np.concatenate((ids[:1], np.array([marker], dtype=np.int64), ids[1:]))


class TokenEmbedServable(BaseServable):
    """One loaded token model: ``embed_tokens`` and ``rerank`` (MaxSim) for the front ends."""

    def __init__(self, info: ModelInfo, tokenizer: ServingTokenizer, batcher: Batcher,
                 deps: ServableDeps = NO_DEPS, settings: TokenSettings | None = None) -> None:
        super().__init__(info, tokenizer, batcher, deps)
        self.settings = settings or TokenSettings()
        self._skip = np.array(sorted(self.settings.skiplist_ids), dtype=np.int64)

    def _marked(self, docs: Sequence[TokenIds], kind: TokenKind) -> list[TokenIds]:
        s = self.settings
        marker = s.query_marker_id if kind == "query" else s.document_marker_id
        marked = [with_marker(d, marker) for d in docs]
        if kind == "query" and s.expansion is not None:
            return [s.expansion.expand(d) for d in marked]
        return marked

    def _part_options(self, kind: TokenKind, truncate: bool, opts: EmbedOptions) -> tuple[bool, EmbedOptions]:
        """A fixed query expansion cuts every query to its length (marker included), as the reference does."""
        e = self.settings.expansion
        if kind != "query" or e is None or e.strategy != "fixed":
            return truncate, opts
        limit = e.length - self.settings.markers
        return True, replace(opts, max_tokens=limit if opts.max_tokens is None else min(limit, opts.max_tokens))

    def _kept(self, rows: np.ndarray, doc: TokenIds, kind: TokenKind) -> np.ndarray:
        if kind == "query" or self._skip.size == 0:
            return np.asarray(rows, dtype=np.float32)
        keep = ~np.isin(np.asarray(doc, dtype=np.int64), self._skip)
        return np.asarray(rows[keep], dtype=np.float32)

    async def _run(self, parts: Sequence[tuple[Inputs, TokenKind]], truncate: bool,
                   opts: EmbedOptions) -> tuple[list[list[TokenIds]], list[list[np.ndarray]], Timings]:
        """Each part's inputs as its kind, in one submission to the batcher."""
        if opts.chunking is not None:
            raise InvalidInput(f"The model '{self.info.name}' is a token model: 'chunking' is for dense "
                               "embeddings (split long documents before sending them)", param="chunking")
        with self.in_progress():
            started = time.perf_counter()
            docs = [self._marked(await self._encode(inputs, *self._part_options(kind, truncate, opts)), kind)
                    for inputs, kind in parts]
            tokenized = time.perf_counter()
            flat = [d for part in docs for d in part]
            tracing.tokenized(started, tokenized, flat)
            result = await self.batcher.submit(flat)
        vectors: list[list[np.ndarray]] = []
        at = 0
        for (_, kind), part in zip(parts, docs, strict=True):
            vectors.append([self._kept(result.embeddings[at + i], d, kind) for i, d in enumerate(part)])
            at += len(part)
        return docs, vectors, Timings(tokenized - started, result.queue_seconds, result.inference_seconds)

    async def embed_tokens(self, inputs: Inputs, *, kind: TokenKind = "document", truncate: bool | None = None,
                           options: EmbedOptions | None = None) -> TokenResult:
        inputs = as_documents(inputs)
        if len(inputs) == 0:
            return TokenResult([], [])
        cut = self.info.truncate if truncate is None else truncate
        docs, vectors, timings = await self._run([(inputs, kind)], cut, options or _NO_OPTIONS)
        return TokenResult(vectors[0], [len(d) for d in docs[0]], timings)

    async def rerank(self, query: str, documents: Sequence[str],
                     options: RerankOptions = DEFAULT_RERANK) -> RerankResult:
        """MaxSim of the query's token vectors against each document's; documents longer than the window are
        truncated (``options.direction``), as the reference encodes them."""
        refuse_instruction(options, "a token-vector (MaxSim) model")
        if len(documents) == 0:
            empty = np.zeros(0, dtype=np.float32)
            return RerankResult(empty, empty, [], [])
        opts = EmbedOptions(truncation_direction=options.direction)
        docs, vectors, timings = await self._run([([query], "query"), (list(documents), "document")], True, opts)
        started = time.perf_counter()
        scores = maxsim(vectors[0][0], vectors[1])
        timings.inference += time.perf_counter() - started
        counts = [len(d) for d in docs[1]]
        return RerankResult(scores, scores.copy(), counts, [1] * len(counts), timings)


class TokenEmbedSpec(TaskSpec, task=Task.TOKEN_EMBED, calculator=TOKEN_EMBED, label="token ",
                     endpoint="/embed_all, /v3/embeddings (per-token arrays) or /v3/rerank (MaxSim)"):

    def prepare(self, source: Source) -> Prepared:
        settings = TokenSettings.from_record(source.record)
        window = resolve_max_length(source.model_dir, source.record) - settings.markers  # room for the marker
        return Prepared(source.graph, window, add_token_head, {"head": "token_embed"},
                        ((1, 8), (2, min(64, window))), extras={"settings": settings})

    def info(self, source: Source, prepared: Prepared, *, dimensions: int, device: str, precision: str,
             created: int) -> ModelInfo:
        return replace(super().info(source, prepared, dimensions=dimensions, device=device, precision=precision,
                                    created=created),
                       normalize=True, truncate=prepared.graph.truncate, serves=(Task.RERANK,),
                       prompts=prompts_from_record(source.record).with_default(source.cfg.default_prompt_name),
                       muvera=params_from_record((source.record.get(RECORD_KEY) or {}).get("muvera"), dimensions))

    def ready_details(self, info: ModelInfo, prepared: Prepared, cfg: ServeConfig) -> str:
        s: TokenSettings = prepared.extras["settings"]
        return (f"{info.dimensions} dimensions per token, max_length {info.max_length}, markers "
                f"{'yes' if s.markers else 'no'}, skiplist {len(s.skiplist_ids)} ids, query expansion "
                f"{f'{s.expansion.strategy} to {s.expansion.length}' if s.expansion else 'no'}")

    def servable(self, loaded: LoadedModel, batcher: Batcher, deps: ServableDeps) -> BaseServable:
        return TokenEmbedServable(loaded.info, loaded.tokenizer, batcher, replace(deps, max_chunks=None),
                                  loaded.extras.get("settings"))


SPEC = TokenEmbedSpec()
