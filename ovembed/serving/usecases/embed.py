"""The embeddings use case behind ``/v3/embeddings``, ``/api/embed``, KServe infer (REST, gRPC)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.serving.api import (
    ChunkingOptions,
    ChunkSpan,
    EmbedOptions,
    Inputs,
    ModelInfo,
    Registry,
    Timings,
    TruncationDirection,
)
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases import models


@dataclass(frozen=True)
class EmbedRequest:
    model: str
    inputs: Inputs
    truncate: bool | None = None  # None: the model's default
    dimensions: int | None = None  # Matryoshka: keep the first N (already >= 1)
    version: str | None = None  # None or "": the served version
    # Prompts (texts only; at most one of the three): literal text, one of the model's prompt
    # names, or a Cohere/vLLM input_type mapped onto them. None of them: the default prompt.
    prompt: str | None = None
    prompt_name: str | None = None
    input_type: str | None = None
    truncation_direction: TruncationDirection = "right"
    chunking: ChunkingOptions | None = None


@dataclass(frozen=True)
class Embeddings:
    info: ModelInfo
    version: int
    vectors: np.ndarray  # C-contiguous float32 [n_inputs, dimensions or info.dimensions]
    token_counts: list[int]
    timings: Timings = field(default_factory=Timings)
    chunks: list[ChunkSpan] | None = None  # chunking "none": what each row covers

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


async def embed(registry: Registry, ctx: RequestContext, req: EmbedRequest) -> Embeddings:
    """Resolve, check, embed (cancelled if the client goes away: ``ClientGone``), shape."""
    servable, status = models.servable(registry, ctx, req.model, req.version)
    info = servable.info
    check_dimensions(req.dimensions, info)
    if len(req.inputs) == 0:  # nothing for the engine to do
        width = req.dimensions or info.dimensions
        return Embeddings(info, status.version, np.empty((0, width), dtype=np.float32), [])
    options = embed_options(info, req)
    result = await ctx.guard(servable.embed(req.inputs, truncate=req.truncate, options=options))
    vectors = select_dimensions(result.embeddings, req.dimensions, normalize=info.normalize)
    return Embeddings(info, status.version, vectors, result.token_counts, result.timings, result.chunks)


def embed_options(info: ModelInfo, req: EmbedRequest) -> EmbedOptions:
    """The prompt text, truncation direction and chunking the servable applies.

    Prompts and chunking are for texts: token-id documents are what the model sees, so they
    get no default prompt, and asking for a prompt or chunking with them is a 400.
    """
    texts = isinstance(req.inputs, str) or (len(req.inputs) > 0 and isinstance(req.inputs[0], str))
    if not texts:
        for name in ("prompt", "prompt_name", "input_type", "chunking"):
            if getattr(req, name) is not None:
                raise InvalidInput(f"'{name}' applies to text inputs, not to token ids", param=name)
        return EmbedOptions(truncation_direction=req.truncation_direction)
    prompt = info.prompts.choose(prompt=req.prompt, prompt_name=req.prompt_name, input_type=req.input_type)
    return EmbedOptions(prompt=prompt, truncation_direction=req.truncation_direction, chunking=req.chunking)


def check_dimensions(dimensions: int | None, info: ModelInfo) -> None:
    """``dimensions`` (already known to be >= 1) must not exceed the model's size."""
    if dimensions is not None and dimensions > info.dimensions:
        raise InvalidInput(
            f"'dimensions' must be at most {info.dimensions} for model '{info.name}', "
            f"got {dimensions}",
            param="dimensions",
        )


def select_dimensions(embeddings: np.ndarray, dimensions: int | None, *,
                      normalize: bool) -> np.ndarray:
    """Keep the first ``dimensions`` columns; re-normalise rows when the model normalises.

    Returns a C-contiguous float32 array (what orjson and ``tobytes`` need).
    """
    out = embeddings
    if dimensions is not None and dimensions < embeddings.shape[1]:
        out = embeddings[:, :dimensions]
        if normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, np.float32(1e-12))
    return np.ascontiguousarray(out, dtype=np.float32)
