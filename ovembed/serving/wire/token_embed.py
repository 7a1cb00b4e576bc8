"""Token vectors (late interaction) on the wire: TEI's ``POST /embed_all`` and ``/v3/embeddings`` over a token
model.

TEI request: ``{"inputs": str | [str], "truncate"?, "truncation_direction"?, "prompt_name"?, "model"?,
"input_type"?}``; response ``[[[float, ...], ...], ...]``: per input, one vector per token (TEI's shape).
``input_type`` (an ovembed extension; ``query``/``search_query`` or ``document``/``search_document``, the
default) picks the model's query or document marker and whether the document skiplist applies.

OpenAI (``/v3/embeddings`` naming a token model): each item carries ``"embeddings": [[...], ...]`` (one row per
token) instead of ``"embedding"``; ``encoding_format`` ``float``, ``base64`` (the little-endian float32 bytes of
the item's 2-D array, row-major, with ``"shape": [n_tokens, dim]``) or a compact type (int8, uint8, binary,
ubinary: row by row, as for dense vectors).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.serving.usecases.token_embed import TokenEmbeddings, TokenEmbedRequest
from ovembed.serving.wire import fields
from ovembed.serving.wire.compact import COMPACT_TYPES, compact

_DIRECTIONS = {"right": "right", "left": "left"}
TOKEN_FORMATS = ("float", "base64", *COMPACT_TYPES)


def _inputs(value: object) -> tuple[str, ...]:
    if value is None:
        raise InvalidInput("Missing required field 'inputs'", param="inputs")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput("'inputs' must be a non-empty string or a non-empty list of non-empty strings",
                           param="inputs")
    return tuple(value)


def _optional_text(body: fields.JsonObject, key: str) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidInput(f"'{key}' must be a non-empty string", param=key)
    return value


@dataclass(frozen=True)
class TeiEmbedAll:
    request: TokenEmbedRequest


def parse_embed_all_request(body: fields.JsonObject, *, max_inputs: int) -> TeiEmbedAll:
    inputs = _inputs(body.get("inputs"))
    fields.check_count(len(inputs), max_inputs, param="inputs")
    direction_text = body.get("truncation_direction")
    direction = "right"
    if direction_text is not None:
        found = _DIRECTIONS.get(direction_text.lower()) if isinstance(direction_text, str) else None
        if found is None:
            raise InvalidInput("'truncation_direction' must be 'right' or 'left'", param="truncation_direction")
        direction = found
    return TeiEmbedAll(TokenEmbedRequest(
        _optional_text(body, "model"), inputs, truncate=fields.optional_bool(body, "truncate"),
        prompt_name=_optional_text(body, "prompt_name"), input_type=_optional_text(body, "input_type"),
        truncation_direction=direction))  # type: ignore[arg-type]


def tei_response(result: TokenEmbeddings) -> list[np.ndarray]:
    """Per input its ``[n_tokens, dim]`` array (orjson writes it as nested lists)."""
    return [np.ascontiguousarray(v, dtype=np.float32) for v in result.vectors]


def _encoded(vectors: np.ndarray, encoding_format: str) -> dict[str, Any]:
    rows = np.ascontiguousarray(vectors, dtype=np.float32)
    if encoding_format == "float":
        return {"embeddings": rows}
    if encoding_format == "base64":
        data = base64.b64encode(rows.astype("<f4", copy=False).tobytes()).decode("ascii")
        return {"embeddings": data, "shape": list(rows.shape)}
    if encoding_format in COMPACT_TYPES:
        return {"embeddings": compact(rows, encoding_format)}  # type: ignore[arg-type]
    raise InvalidInput(f"encoding_format '{encoding_format}' does not apply to a token model "
                       f"(use one of {', '.join(TOKEN_FORMATS)})", param="encoding_format")


def check_format(encoding_format: str) -> None:
    """A 400 before any work when a token model cannot give ``encoding_format``."""
    if encoding_format not in TOKEN_FORMATS:
        _encoded(np.zeros((0, 0), dtype=np.float32), encoding_format)


def openai_response(result: TokenEmbeddings, encoding_format: str) -> dict[str, Any]:
    tokens = result.prompt_tokens
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, **_encoded(v, encoding_format)}
                 for i, v in enumerate(result.vectors)],
        "model": result.info.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
