"""Request fields for retrieval features, shared by the wire formats that offer them.

``prompt`` (text), ``prompt_name`` (TEI) and ``input_type`` (Cohere/vLLM) choose a prompt;
``truncation_direction`` (TEI: ``left`` or ``right``) says which end truncation cuts;
``chunking`` (``{"size": N, "overlap": M, "combine": "mean"|"none", "max_chunks": K}``) splits long texts.

JSON bodies (OpenAI, Ollama) carry them as fields (:func:`parse_retrieval_fields`); KServe v2 (REST and
gRPC) as request parameters (:func:`parse_retrieval_parameters`): ``prompt``, ``prompt_name``,
``input_type``, ``truncation_direction`` (strings), ``chunking`` (bool: on with every default),
``chunk_size``, ``chunk_overlap``, ``max_chunks`` (integers: any of them turns chunking on). KServe's
output is one row per input, so chunking there always combines (``mean``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from ovembed.errors import InvalidInput
from ovembed.serving.api import COMBINE_MODES, ChunkingOptions, TruncationDirection
from ovembed.serving.wire import fields

DIRECTIONS: tuple[TruncationDirection, ...] = ("left", "right")


@dataclass(frozen=True)
class RetrievalFields:
    prompt: str | None = None
    prompt_name: str | None = None
    input_type: str | None = None
    truncation_direction: TruncationDirection = "right"
    chunking: ChunkingOptions | None = None

    def request_fields(self) -> dict[str, Any]:
        """The fields as keyword arguments of the use cases' requests (EmbedRequest, SparseRequest)."""
        return {f.name: getattr(self, f.name) for f in dataclass_fields(self)}


def parse_retrieval_fields(body: fields.JsonObject, *, prompt_text: bool = True) -> RetrievalFields:
    """``prompt_text=False``: a ``prompt`` field is not ours (Ollama's legacy API uses it for the input)."""
    return RetrievalFields(
        prompt=_optional_str(body, "prompt", allow_empty=True) if prompt_text else None,
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
    unknown = set(value) - {"size", "overlap", "combine", "max_chunks"}
    if unknown:
        raise InvalidInput(f"'chunking' has unknown fields: {', '.join(sorted(unknown))}", param="chunking")
    size = fields.optional_int(value, "size", minimum=1)
    overlap = fields.optional_int(value, "overlap", minimum=0) or 0
    if size is not None and overlap >= size:
        raise InvalidInput(f"'chunking.overlap' must be less than 'chunking.size' ({size}), got {overlap}",
                           param="chunking")
    combine = fields.optional_choice(value, "combine", COMBINE_MODES) or "mean"
    max_chunks = fields.optional_int(value, "max_chunks", minimum=1)
    return ChunkingOptions(size=size, overlap=overlap, combine=combine, max_chunks=max_chunks)


_STRING_PARAMETERS = ("prompt", "prompt_name", "input_type", "truncation_direction")
_INT_PARAMETERS = {"chunk_size": "size", "chunk_overlap": "overlap", "max_chunks": "max_chunks"}


def parse_retrieval_parameters(params: Mapping[str, object]) -> RetrievalFields:
    """KServe request parameters (already plain values: JSON for REST, the oneof's value for gRPC)."""
    body: fields.JsonObject = {k: params[k] for k in _STRING_PARAMETERS if k in params}
    chunking: dict[str, object] = {key: params[name] for name, key in _INT_PARAMETERS.items() if name in params}
    on = params.get("chunking")
    if on is not None and not isinstance(on, bool):
        raise InvalidInput("Parameter 'chunking' must be a bool", param="chunking")
    for name in _INT_PARAMETERS:
        if name in params and not fields.is_int(params[name]):
            raise InvalidInput(f"Parameter '{name}' must be an integer", param=name)
    if on is False and chunking:
        raise InvalidInput("Parameter 'chunking' is false but chunk parameters are set", param="chunking")
    if on or chunking:
        body["chunking"] = chunking
    return parse_retrieval_fields(body)


def _optional_str(body: fields.JsonObject, key: str, *, allow_empty: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be a string", param=key)
    if not value and not allow_empty:
        raise InvalidInput(f"'{key}' must not be empty", param=key)
    return value
