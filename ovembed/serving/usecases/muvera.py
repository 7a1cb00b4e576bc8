"""MUVERA over a token model (``/v3/embeddings`` with ``muvera``): the texts' token vectors (:mod:`.token_embed`)
-> one Fixed Dimensional Encoding per text (:mod:`ovembed.heads.muvera`): a query SUMS per partition, a document
AVERAGES and fills its empty partitions. The parameters are the model's defaults (``ModelInfo.muvera``, from its
record) with the request's changes; the result records the ones used."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ovembed.config import Task
from ovembed.errors import InvalidInput
from ovembed.heads.muvera import DEFAULT_PARAMS, MuveraKind, MuveraParams, muvera_for
from ovembed.serving.api import ModelInfo, Registry, Timings
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases import models
from ovembed.serving.usecases.token_embed import TokenEmbedRequest, embed_tokens, token_kind


@dataclass(frozen=True)
class MuveraEmbeddings:
    info: ModelInfo
    version: int
    vectors: np.ndarray  # float32 [n_inputs, params.output_dim(info.dimensions)]
    params: MuveraParams
    kind: MuveraKind  # "query": per-partition sums; "document": averages, empty partitions filled
    prompt_tokens: int
    timings: Timings = field(default_factory=Timings)


async def refuse(registry: Registry, ctx: RequestContext, name: str) -> None:
    """``muvera`` asked of a model that has no token vectors: a 400 naming its task (404 if unknown)."""
    found, _ = await models.servable(registry, ctx, name)
    task = found.info.task
    if task is not Task.TOKEN_EMBED:
        article = "an" if task.value[:1] in "aeiou" else "a"
        raise InvalidInput(f"'muvera' needs a token_embed model (one vector per token); the model '{name}' is "
                           f"{article} {task.value} model", param="muvera")


async def embed_muvera(registry: Registry, ctx: RequestContext, req: TokenEmbedRequest,
                       changes: Mapping[str, Any]) -> MuveraEmbeddings:
    """Check the parameters against the model before any work, embed every token, encode each text."""
    servable, _ = await models.task_servable(registry, ctx, Task.TOKEN_EMBED, req.model)
    info = servable.info
    params = (info.muvera or DEFAULT_PARAMS).merged(changes)
    params.check(info.dimensions)
    kind: MuveraKind = token_kind(req.input_type)
    tokens = await embed_tokens(registry, ctx, req)
    started = time.perf_counter()
    encoder = muvera_for(tokens.info.dimensions, params)  # off the event loop: ~ms per text at the defaults
    vectors = await asyncio.to_thread(encoder.encode_many, tokens.vectors, kind)
    tokens.timings.inference += time.perf_counter() - started
    return MuveraEmbeddings(tokens.info, tokens.version, vectors, params, kind, tokens.prompt_tokens,
                            tokens.timings)
