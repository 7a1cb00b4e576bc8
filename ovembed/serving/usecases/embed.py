"""The embeddings use case behind ``/v3/embeddings``, ``/api/embed``, KServe infer (REST, gRPC)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ovembed import matryoshka
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
    # vLLM's fields (None/True: the model's behaviour): unit-length vectors or not; cut every input to
    # this many tokens (-1: the model's maximum) on truncation_direction's side; the model's special tokens.
    normalize: bool | None = None
    truncate_prompt_tokens: int | None = None
    add_special_tokens: bool = True
    max_tokens: int | None = None  # Cohere's: cut to at most this many tokens (the model's limit if lower)


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
    servable, status = await models.servable(registry, ctx, req.model, req.version)
    info = servable.info
    check_dimensions(req.dimensions, info)
    normalize = check_normalize(req.normalize, info)
    if len(req.inputs) == 0:  # nothing for the engine to do
        width = req.dimensions or info.dimensions
        return Embeddings(info, status.version, np.empty((0, width), dtype=np.float32), [])
    options = embed_options(info, req)
    inputs, truncate = truncated(req, info)
    result = await ctx.guard(servable.embed(inputs, truncate=truncate, options=options))
    vectors = select_dimensions(result.embeddings, req.dimensions, normalize=normalize,
                                normalized=info.normalize)
    return Embeddings(info, status.version, vectors, result.token_counts, result.timings, result.chunks)


def check_normalize(normalize: bool | None, info: ModelInfo) -> bool:
    """Whether the vectors go out unit-length. The model's head normalises inside its graph, so a
    model that does cannot give raw vectors (400); one that does not is normalised here on request."""
    if normalize is False and info.normalize:
        raise InvalidInput(f"The model '{info.name}' normalises its vectors inside its graph (graph.pbtxt "
                           "normalize_embeddings: true), so 'normalize' false cannot be honoured: serve an export "
                           "made with --skip_normalize for raw vectors", param="normalize")
    return info.normalize if normalize is None else normalize


def max_tokens(value: int | None, info: ModelInfo) -> int | None:
    """vLLM's ``truncate_prompt_tokens``: -1 is the model's maximum; more than it is vLLM's 400."""
    if value is None:
        return None
    if value == -1:
        return info.max_length
    if value > info.max_length:
        raise InvalidInput(f"'truncate_prompt_tokens' ({value}) is greater than the model's maximum length "
                           f"({info.max_length}): request a smaller truncation size", param="truncate_prompt_tokens")
    return value


def token_limit(req: EmbedRequest, info: ModelInfo) -> int | None:
    """The tokens every input is cut to (vLLM's truncate_prompt_tokens, Cohere's max_tokens), or None."""
    limit = max_tokens(req.truncate_prompt_tokens, info)
    if req.max_tokens is not None:
        limit = min(limit or info.max_length, req.max_tokens)
    return limit


def truncated(req: EmbedRequest, info: ModelInfo) -> tuple[Inputs, bool | None]:
    """The inputs and ``truncate`` for the servable: token-id documents are cut here (they are used
    as given); texts are cut by the servable (``EmbedOptions.max_tokens``)."""
    limit = token_limit(req, info)
    if limit is None:
        return req.inputs, req.truncate
    if _is_texts(req.inputs):
        return req.inputs, True
    left = req.truncation_direction == "left"
    return [list(doc[len(doc) - limit:] if left else doc[:limit]) for doc in req.inputs], True  # type: ignore[union-attr]


def _is_texts(inputs: Inputs) -> bool:
    return isinstance(inputs, str) or (len(inputs) > 0 and isinstance(inputs[0], str))


def embed_options(info: ModelInfo, req: EmbedRequest) -> EmbedOptions:
    """The prompt text, truncation direction and chunking the servable applies.

    Prompts and chunking are for texts: token-id documents are what the model sees, so they
    get no default prompt, and asking for a prompt or chunking with them is a 400.
    """
    if not _is_texts(req.inputs):
        for name in ("prompt", "prompt_name", "input_type", "chunking"):
            if getattr(req, name) is not None:
                raise InvalidInput(f"'{name}' applies to text inputs, not to token ids", param=name)
        return EmbedOptions(truncation_direction=req.truncation_direction)
    if req.chunking is not None:
        for name, value in (("truncate_prompt_tokens", req.truncate_prompt_tokens is not None),
                            ("max_tokens", req.max_tokens is not None),
                            ("add_special_tokens", not req.add_special_tokens)):
            if value:
                raise InvalidInput(f"'{name}' does not combine with 'chunking' (chunks are cut to fit the model)",
                                   param=name)
    prompt = info.prompts.choose(prompt=req.prompt, prompt_name=req.prompt_name, input_type=req.input_type)
    return EmbedOptions(prompt=prompt, truncation_direction=req.truncation_direction, chunking=req.chunking,
                        max_tokens=token_limit(req, info),
                        add_special_tokens=req.add_special_tokens)


def check_dimensions(dimensions: int | None, info: ModelInfo) -> None:
    """``dimensions`` (already known to be >= 1): at most the model's size, and shorter only for a
    model trained for it (:mod:`ovembed.matryoshka`)."""
    matryoshka.check(dimensions, info.matryoshka, model=info.name, size=info.dimensions)


def select_dimensions(embeddings: np.ndarray, dimensions: int | None, *,
                      normalize: bool, normalized: bool | None = None) -> np.ndarray:
    """Keep the first ``dimensions`` columns; make rows unit-length when ``normalize`` and they are
    not already (``normalized``: the model's head did it, and no column was cut).

    Returns a C-contiguous float32 array (what orjson and ``tobytes`` need).
    """
    out = embeddings
    unit = normalize if normalized is None else normalized
    if dimensions is not None and dimensions < embeddings.shape[1]:
        out = embeddings[:, :dimensions]
        unit = False
    if normalize and not unit:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, np.float32(1e-12))
    return np.ascontiguousarray(out, dtype=np.float32)
