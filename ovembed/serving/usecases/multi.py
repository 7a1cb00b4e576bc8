"""The several-outputs use case (a bge_m3 model): ``output: ["dense", "sparse", "multivector"]`` on
``/v3/embeddings`` asks for any of them, each from the same inference. A model of one output answers with a 400
naming its task (``api.wrong_output``)."""

from __future__ import annotations

from dataclasses import dataclass

from ovembed.serving.api import (
    DEFAULT_SPARSE,
    EmbedOptions,
    Inputs,
    ModelInfo,
    MultiResult,
    Output,
    Registry,
    SparseOptions,
    TruncationDirection,
)
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases import models


@dataclass(frozen=True)
class MultiRequest:
    model: str
    inputs: Inputs
    outputs: tuple[Output, ...]
    truncate: bool | None = None  # None: the model's default
    prompt: str | None = None
    prompt_name: str | None = None
    truncation_direction: TruncationDirection = "right"
    pruning: SparseOptions = DEFAULT_SPARSE  # of the sparse output


@dataclass(frozen=True)
class MultiEmbeddings:
    info: ModelInfo
    version: int
    outputs: tuple[Output, ...]
    result: MultiResult


async def embed_multi(registry: Registry, ctx: RequestContext, req: MultiRequest) -> MultiEmbeddings:
    """Resolve, ask the model for the outputs (cancelled if the client goes away)."""
    servable, status = models.servable(registry, ctx, req.model)
    info = servable.info
    texts = isinstance(req.inputs, str) or (len(req.inputs) > 0 and isinstance(req.inputs[0], str))
    prompt = info.prompts.choose(prompt=req.prompt, prompt_name=req.prompt_name) if texts else ""
    options = EmbedOptions(prompt=prompt, truncation_direction=req.truncation_direction)
    result = await ctx.guard(servable.embed_multi(req.inputs, req.outputs, truncate=req.truncate, options=options,
                                                  pruning=req.pruning))
    return MultiEmbeddings(info, status.version, req.outputs, result)
