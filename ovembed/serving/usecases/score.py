"""The score use case behind vLLM's ``/score``: one relevance score per (first, second) text pair.

Rerank models: pairs are grouped by their first text, and each group is one rerank call on the
model's batcher (the groups run concurrently), so 1:N costs what a rerank of N documents costs.
Embeddings models (as vLLM): the cosine similarity of the two texts' vectors, each distinct text
embedded once; there is no activation, so the raw and activated scores are the same.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from ovembed.config import Task
from ovembed.errors import InvalidInput
from ovembed.serving.api import (
    DEFAULT_RERANK,
    ModelInfo,
    Registry,
    RerankOptions,
    RerankResult,
    Timings,
    wrong_task,
)
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases import models
from ovembed.serving.usecases.embed import EmbedRequest, embed
from ovembed.serving.usecases.rerank import check_truncation


@dataclass(frozen=True)
class ScoreRequest:
    model: str | None  # None: the one rerank model served
    pairs: tuple[tuple[str, str], ...]
    options: RerankOptions = DEFAULT_RERANK
    truncate_prompt_tokens: int | None = None


@dataclass(frozen=True)
class Scores:
    info: ModelInfo
    scores: np.ndarray  # float32 [n_pairs] activated, in pair order
    raw_scores: np.ndarray  # float32 [n_pairs] logits
    token_counts: list[int]
    timings: Timings = field(default_factory=Timings)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


async def score(registry: Registry, ctx: RequestContext, req: ScoreRequest) -> Scores:
    name = req.model if req.model is not None else models.default_model(registry, Task.RERANK)
    servable, _ = await models.servable(registry, ctx, name)
    info = servable.info
    if info.task is Task.EMBEDDINGS:
        if req.options.instruction is not None:
            raise InvalidInput("'instruction' applies to decoder rerankers (a prompt template); "
                               f"{info.name} is an embeddings model", param="instruction")
        return await _cosine(registry, ctx, info, req)
    if info.task is not Task.RERANK and Task.RERANK not in info.serves:  # a token or bge_m3 model scores pairs too
        raise wrong_task(info, Task.RERANK.value)
    check_truncation(req.truncate_prompt_tokens, info)
    groups: dict[str, list[int]] = {}
    for i, (first, _) in enumerate(req.pairs):
        groups.setdefault(first, []).append(i)

    async def run_all() -> list[RerankResult]:
        return await asyncio.gather(*(servable.rerank(query, [req.pairs[i][1] for i in idx], req.options)
                                      for query, idx in groups.items()))

    results = await ctx.guard(run_all())
    n = len(req.pairs)
    scores, raw = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
    counts = [0] * n
    timings = Timings()
    for idx, result in zip(groups.values(), results, strict=True):
        scores[idx], raw[idx] = result.scores, result.raw_scores
        for i, count in zip(idx, result.token_counts, strict=True):
            counts[i] = count
        timings.tokenization += result.timings.tokenization
        timings.queue = max(timings.queue, result.timings.queue)
        timings.inference = max(timings.inference, result.timings.inference)
    return Scores(info, scores, raw, counts, timings)


async def _cosine(registry: Registry, ctx: RequestContext, info: ModelInfo, req: ScoreRequest) -> Scores:
    texts = list(dict.fromkeys(text for pair in req.pairs for text in pair))
    row = {text: i for i, text in enumerate(texts)}
    result = await embed(registry, ctx, EmbedRequest(info.name, tuple(texts), normalize=True,
                                                     truncate_prompt_tokens=req.truncate_prompt_tokens))
    first = result.vectors[[row[a] for a, _ in req.pairs]]
    second = result.vectors[[row[b] for _, b in req.pairs]]
    cosine = np.einsum("ij,ij->i", first, second).astype(np.float32)
    counts = [result.token_counts[row[a]] + result.token_counts[row[b]] for a, b in req.pairs]
    return Scores(info, cosine, cosine, counts, result.timings)
