"""The rerank use case behind ``/v3/rerank`` (Cohere, OVMS, Jina shapes) and TEI's ``/rerank``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ovembed.config import Task
from ovembed.serving.api import (
    DEFAULT_RERANK,
    ModelInfo,
    Registry,
    RerankOptions,
    Timings,
)
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases import models


@dataclass(frozen=True)
class RerankRequest:
    model: str | None  # None: the one rerank model served (TEI's requests name none)
    query: str
    documents: tuple[str, ...]
    top_n: int | None = None  # None: every document
    options: RerankOptions = DEFAULT_RERANK


@dataclass(frozen=True)
class Ranking:
    info: ModelInfo
    version: int
    order: list[int]  # document indexes, best first, top_n applied
    scores: np.ndarray  # float32 [n_docs] activated scores, in document order
    raw_scores: np.ndarray  # float32 [n_docs] relevance logits
    token_counts: list[int]
    chunk_counts: list[int]
    timings: Timings = field(default_factory=Timings)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


def ranked(scores: np.ndarray, top_n: int | None) -> list[int]:
    """Indexes by descending score; equal scores keep document order."""
    order = np.argsort(-scores, kind="stable")
    return order[: top_n].tolist() if top_n is not None else order.tolist()


async def rerank(registry: Registry, ctx: RequestContext, req: RerankRequest) -> Ranking:
    """Resolve, check the task, score every document (cancelled if the client goes away), rank."""
    servable, status = models.task_servable(registry, ctx, Task.RERANK, req.model)
    info = servable.info
    result = await ctx.guard(servable.rerank(req.query, req.documents, req.options))
    order = ranked(result.raw_scores, req.top_n)
    return Ranking(info, status.version, order, result.scores, result.raw_scores, result.token_counts,
                   result.chunk_counts, result.timings)
