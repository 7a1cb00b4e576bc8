"""Cohere's ``POST /v2/embed`` (what ``cohere.ClientV2.embed`` sends): request parsing and
response shaping.

Request: ``model``, ``texts``, ``input_type`` (mapped onto the model's prompts),
``embedding_types`` (``float``, ``int8``, ``uint8``, ``binary``, ``ubinary``, ``base64``;
default ``["float"]``), ``truncate`` (``NONE``: reject long inputs, ``START``: cut the start,
``END``: cut the end, the default), ``output_dimension`` (Matryoshka) and ``max_tokens``
(ignored: the model's limit applies). ``images`` and ``inputs`` are not supported (400).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.serving.api import TruncationDirection
from ovembed.serving.wire import fields
from ovembed.serving.wire.compact import COMPACT_TYPES, compact
from ovembed.serving.wire.vectors import to_base64

EmbeddingType = Literal["float", "int8", "uint8", "binary", "ubinary", "base64"]
EMBEDDING_TYPES: tuple[EmbeddingType, ...] = ("float", *COMPACT_TYPES, "base64")
TRUNCATE_MODES = ("NONE", "START", "END")


@dataclass(frozen=True)
class CohereEmbedRequest:
    model: str
    texts: tuple[str, ...]
    input_type: str | None
    embedding_types: tuple[EmbeddingType, ...]
    truncate: bool
    truncation_direction: TruncationDirection
    dimensions: int | None


def parse_embed_request(body: fields.JsonObject, *, max_inputs: int) -> CohereEmbedRequest:
    model = fields.required_str(body, "model")
    for unsupported in ("images", "inputs"):
        if body.get(unsupported) is not None:
            raise InvalidInput(f"'{unsupported}' is not supported: send 'texts'", param=unsupported)
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts:
        raise InvalidInput("'texts' must be a non-empty list of strings", param="texts")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            raise InvalidInput(f"'texts[{i}]' must be a non-empty string", param="texts")
    fields.check_count(len(texts), max_inputs, param="texts")
    input_type = body.get("input_type")
    if input_type is not None and not isinstance(input_type, str):
        raise InvalidInput("'input_type' must be a string", param="input_type")
    types = body.get("embedding_types")
    if types is None:
        kinds: tuple[EmbeddingType, ...] = ("float",)
    elif not isinstance(types, list) or not types:
        raise InvalidInput("'embedding_types' must be a non-empty list", param="embedding_types")
    else:
        kinds = tuple(fields.optional_choice({"embedding_types": t}, "embedding_types", EMBEDDING_TYPES)
                      or "float" for t in types)
    truncate = fields.optional_choice(body, "truncate", TRUNCATE_MODES) or "END"
    return CohereEmbedRequest(
        model=model, texts=tuple(texts), input_type=input_type, embedding_types=tuple(dict.fromkeys(kinds)),
        truncate=truncate != "NONE", truncation_direction="left" if truncate == "START" else "right",
        dimensions=fields.optional_int(body, "output_dimension", minimum=1),
    )


def embed_response(request_id: str, req: CohereEmbedRequest, vectors: np.ndarray,
                   input_tokens: int) -> dict[str, Any]:
    """Cohere's ``embeddings_by_type`` response."""
    embeddings: dict[str, Any] = {}
    for kind in req.embedding_types:
        if kind == "float":
            embeddings[kind] = vectors
        elif kind == "base64":
            embeddings[kind] = [to_base64(row) for row in vectors]
        else:
            embeddings[kind] = compact(vectors, kind)
    return {
        "id": request_id,
        "response_type": "embeddings_by_type",
        "embeddings": embeddings,
        "texts": list(req.texts),
        "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": input_tokens}},
    }
