"""The token-vector use case (late interaction) behind TEI's ``/embed_all`` and ``/v3/embeddings`` over a token
model: one ``[n_tokens, dim]`` array per input. Rerank by MaxSim goes through :mod:`.rerank` (a token model
serves rerank requests: ``ModelInfo.serves``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ovembed.config import Task
from ovembed.errors import InvalidInput
from ovembed.serving.api import EmbedOptions, Inputs, ModelInfo, Registry, Timings, TokenKind, TruncationDirection
from ovembed.serving.context import RequestContext
from ovembed.serving.usecases import models

QUERY_TYPES = ("query", "search_query")  # input_type values that encode queries (Cohere's and ours)
DOCUMENT_TYPES = ("document", "search_document")


@dataclass(frozen=True)
class TokenEmbedRequest:
    model: str | None  # None: the one token model served (TEI's requests name none)
    inputs: Inputs
    truncate: bool | None = None  # None: the model's default
    prompt: str | None = None
    prompt_name: str | None = None
    input_type: str | None = None  # "query" / "search_query": queries (query marker); else documents
    truncation_direction: TruncationDirection = "right"


@dataclass(frozen=True)
class TokenEmbeddings:
    info: ModelInfo
    version: int
    vectors: list[np.ndarray]  # float32 [n_tokens, dim] per input
    token_counts: list[int]
    timings: Timings = field(default_factory=Timings)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


def token_kind(input_type: str | None) -> TokenKind:
    """Queries get the query marker and keep every token; documents (the default) the document marker and skiplist."""
    if input_type is None or input_type in DOCUMENT_TYPES:
        return "document"
    if input_type in QUERY_TYPES:
        return "query"
    raise InvalidInput(f"'input_type' must be one of {', '.join(QUERY_TYPES + DOCUMENT_TYPES)} for a token "
                       f"model, got {input_type!r}", param="input_type")


def serves_tokens(registry: Registry, name: str | None) -> bool:
    """Whether ``name`` is an available token model (``/v3/embeddings`` then answers with token vectors)."""
    return name is not None and any(info.name == name and info.task is Task.TOKEN_EMBED
                                    for info in models.served_infos(registry))


async def embed_tokens(registry: Registry, ctx: RequestContext, req: TokenEmbedRequest) -> TokenEmbeddings:
    """Resolve, check the task, embed every token (cancelled if the client goes away)."""
    servable, status = await models.task_servable(registry, ctx, Task.TOKEN_EMBED, req.model)
    info = servable.info
    kind = token_kind(req.input_type)
    texts = isinstance(req.inputs, str) or (len(req.inputs) > 0 and isinstance(req.inputs[0], str))
    prompt = info.prompts.choose(prompt=req.prompt, prompt_name=req.prompt_name) if texts else ""
    options = EmbedOptions(prompt=prompt, truncation_direction=req.truncation_direction)
    result = await ctx.guard(servable.embed_tokens(req.inputs, kind=kind, truncate=req.truncate, options=options))
    return TokenEmbeddings(info, status.version, result.vectors, result.token_counts, result.timings)
