"""The rerank use case behind ``/v3/rerank`` (Cohere, OVMS, Jina shapes) and TEI's ``/rerank``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ovembed.config import Task
from ovembed.errors import InvalidInput
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
    truncate_prompt_tokens: int | None = None  # vLLM's: -1 or the model's window (checked here)


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
    if req.options.weights is not None and info.task is not Task.BGE_M3:
        raise InvalidInput(f"'weights' weigh the dense, sparse and colbert scores of a bge_m3 model; the model "
                           f"'{info.name}' is {'an' if info.task.value[:1] in 'aeiou' else 'a'} {info.task.value} "
                           "model", param="weights")
    check_truncation(req.truncate_prompt_tokens, info)
    result = await ctx.guard(servable.rerank(req.query, req.documents, req.options))
    order = ranked(result.raw_scores, req.top_n)
    return Ranking(info, status.version, order, result.scores, result.raw_scores, result.token_counts,
                   result.chunk_counts, result.timings)


def check_truncation(tokens: int | None, info: ModelInfo) -> None:
    """vLLM's ``truncate_prompt_tokens`` on a pair: -1 or the window is one window per document (what
    vLLM does); more than the window is vLLM's own 400; fewer cannot be honoured exactly (400)."""
    if tokens is None or tokens == -1 or tokens == info.max_length:
        return
    if tokens > info.max_length:
        raise InvalidInput(f"'truncate_prompt_tokens' ({tokens}) is greater than the model's maximum length "
                           f"({info.max_length}): request a smaller truncation size", param="truncate_prompt_tokens")
    raise InvalidInput(f"'truncate_prompt_tokens' below the model's window ({tokens} < {info.max_length}) is not "
                       "supported for rerank: send -1 (one window per pair), or max_tokens_per_doc to cut documents",
                       param="truncate_prompt_tokens")
