"""Request fields for retrieval features, shared by the wire formats that offer them.

``prompt`` (text), ``prompt_name`` (TEI) and ``input_type`` (Cohere/vLLM) choose a prompt;
``truncation_direction`` (TEI: ``left`` or ``right``) says which end truncation cuts;
``chunking`` (``{"size": N, "overlap": M, "combine": "mean"|"none"}``) splits long texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ovembed.errors import InvalidInput
from ovembed.serving.engine.passages import COMBINE_MODES, ChunkingOptions
from ovembed.serving.wire import fields

Direction = Literal["left", "right"]
DIRECTIONS: tuple[Direction, ...] = ("left", "right")


@dataclass(frozen=True)
class RetrievalFields:
    prompt: str | None = None
    prompt_name: str | None = None
    input_type: str | None = None
    truncation_direction: Direction = "right"
    chunking: ChunkingOptions | None = None


def parse_retrieval_fields(body: fields.JsonObject) -> RetrievalFields:
    return RetrievalFields(
        prompt=_optional_str(body, "prompt", allow_empty=True),
        prompt_name=_optional_str(body, "prompt_name"),
        input_type=_optional_str(body, "input_type"),
        truncation_direction=fields.optional_choice(body, "truncation_direction", DIRECTIONS) or "right",
        chunking=parse_chunking(body.get("chunking")),
    )


def parse_chunking(value: object) -> ChunkingOptions | None:
    """``chunking``: an object (``{}`` takes every default) or absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("'chunking' must be an object like {\"size\": 256, \"overlap\": 32, "
                           "\"combine\": \"mean\"}", param="chunking")
    unknown = set(value) - {"size", "overlap", "combine"}
    if unknown:
        raise InvalidInput(f"'chunking' has unknown fields: {', '.join(sorted(unknown))}", param="chunking")
    size = fields.optional_int(value, "size", minimum=1)
    overlap = fields.optional_int(value, "overlap", minimum=0) or 0
    if size is not None and overlap >= size:
        raise InvalidInput(f"'chunking.overlap' must be less than 'chunking.size' ({size}), got {overlap}",
                           param="chunking")
    combine = fields.optional_choice(value, "combine", COMBINE_MODES) or "mean"
    return ChunkingOptions(size=size, overlap=overlap, combine=combine)


def _optional_str(body: fields.JsonObject, key: str, *, allow_empty: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be a string", param=key)
    if not value and not allow_empty:
        raise InvalidInput(f"'{key}' must not be empty", param=key)
    return value
