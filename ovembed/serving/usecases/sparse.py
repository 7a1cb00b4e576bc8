"""The sparse embeddings use case behind TEI's ``/embed_sparse`` and ``encoding_format: "sparse"`` on
``/v3/embeddings``: resolve a sparse model, choose the prompt, embed, prune."""

from __future__ import annotations

from dataclasses import dataclass, field

from ovembed.config import Task
from ovembed.errors import InvalidInput
from ovembed.serving.api import (
    DEFAULT_SPARSE,
    ChunkingOptions,
    Inputs,
    ModelInfo,
    Registry,
    SparseOptions,
    SparseVector,
    Timings,
    TruncationDirection,
)
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases import models
from ovembed.serving.usecases.embed import EmbedRequest, embed_options


@dataclass(frozen=True)
class SparseRequest:
    model: str | None  # None: the one sparse model served (TEI's requests name none)
    inputs: Inputs
    truncate: bool | None = None  # None: the model's default
    version: str | None = None
    prompt: str | None = None
    prompt_name: str | None = None
    input_type: str | None = None
    truncation_direction: TruncationDirection = "right"
    pruning: SparseOptions = DEFAULT_SPARSE
    chunking: ChunkingOptions | None = None  # refused: sparse vectors of chunks are not combined


@dataclass(frozen=True)
class SparseEmbeddings:
    info: ModelInfo
    version: int
    vectors: list[SparseVector]
    token_counts: list[int]
    timings: Timings = field(default_factory=Timings)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


async def embed_sparse(registry: Registry, ctx: RequestContext, req: SparseRequest) -> SparseEmbeddings:
    """Resolve, check the task, embed (cancelled if the client goes away), prune."""
    servable, status = await models.task_servable(registry, ctx, Task.SPARSE, req.model, req.version,
                                            hint=" (export one with `ovembed export --task sparse`)")
    info = servable.info
    if req.chunking is not None:
        raise InvalidInput(f"The model '{info.name}' is a sparse model: 'chunking' is for dense embeddings "
                           "(split long documents before sending them)", param="chunking")
    if len(req.inputs) == 0:
        return SparseEmbeddings(info, status.version, [], [])
    options = embed_options(info, EmbedRequest(
        info.name, req.inputs, prompt=req.prompt, prompt_name=req.prompt_name, input_type=req.input_type,
        truncation_direction=req.truncation_direction))
    result = await ctx.guard(servable.embed_sparse(req.inputs, truncate=req.truncate, options=options,
                                                   pruning=req.pruning))
    return SparseEmbeddings(info, status.version, result.vectors, result.token_counts, result.timings)
