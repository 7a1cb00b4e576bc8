"""OpenAI embeddings and models: request parsing and response shaping.

``POST /v3/embeddings`` accepts what the OpenAI API accepts: a string, a non-empty list of
strings, a list of token ids (one document) or a list of non-empty lists of token ids.
Unknown fields (and ``user``) are ignored; ``truncate`` is our extension.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.serving.engine.interface import ModelInfo
from ovembed.serving.wire import fields
from ovembed.serving.wire.vectors import to_base64

EncodingFormat = Literal["float", "base64"]
ENCODING_FORMATS: tuple[EncodingFormat, ...] = ("float", "base64")

TextInputs: TypeAlias = tuple[str, ...]
TokenInputs: TypeAlias = tuple[tuple[int, ...], ...]

_INPUT_TYPES = (
    "'input' must be a string, a list of strings, a list of token ids "
    "or a list of lists of token ids"
)


@dataclass(frozen=True)
class EmbeddingsRequest:
    model: str
    input: TextInputs | TokenInputs
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = None
    truncate: bool | None = None  # None: the model's default


def parse_embeddings_request(body: fields.JsonObject, *, max_inputs: int) -> EmbeddingsRequest:
    model = fields.required_str(body, "model")
    inputs = parse_input(body.get("input"))
    fields.check_count(len(inputs), max_inputs)
    encoding = fields.optional_choice(body, "encoding_format", ENCODING_FORMATS)
    return EmbeddingsRequest(
        model=model,
        input=inputs,
        encoding_format=encoding or "float",
        dimensions=fields.optional_int(body, "dimensions", minimum=1),
        truncate=fields.optional_bool(body, "truncate"),
    )


def parse_input(value: object) -> TextInputs | TokenInputs:
    """The ``input`` field in one of its four forms; anything else is a 400 on ``input``."""
    if value is None:
        raise InvalidInput("Missing required field 'input'", param="input")
    if isinstance(value, str):
        if not value:
            raise InvalidInput("'input' must not be an empty string", param="input")
        return (value,)
    if not isinstance(value, list):
        raise InvalidInput(_INPUT_TYPES, param="input")
    if not value:
        raise InvalidInput("'input' must not be an empty list", param="input")
    first = value[0]
    if isinstance(first, str):
        return _texts(value)
    if fields.is_int(first):
        return (_token_ids(value, "input"),)
    if isinstance(first, list):
        return tuple(_token_document(item, i) for i, item in enumerate(value))
    raise InvalidInput(_INPUT_TYPES, param="input")


def _mixed() -> InvalidInput:
    return InvalidInput(f"{_INPUT_TYPES}; mixed lists are not allowed", param="input")


def _texts(items: list[Any]) -> TextInputs:
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _mixed()
        if not item:
            raise InvalidInput(f"'input[{i}]' must not be an empty string", param="input")
    return tuple(items)


def _token_ids(items: list[Any], where: str) -> tuple[int, ...]:
    for item in items:
        if not fields.is_int(item):
            raise _mixed()
        if item < 0:
            raise InvalidInput(f"'{where}' contains a negative token id ({item})", param="input")
    return tuple(items)


def _token_document(item: object, index: int) -> tuple[int, ...]:
    if not isinstance(item, list):
        raise _mixed()
    if not item:
        raise InvalidInput(f"'input[{index}]' must not be an empty list", param="input")
    return _token_ids(item, f"input[{index}]")


def embeddings_response(model: str, embeddings: np.ndarray, prompt_tokens: int,
                        encoding_format: EncodingFormat) -> dict[str, Any]:
    """The response body; ``embeddings`` rows are in input order (C-contiguous float32)."""
    encode = to_base64 if encoding_format == "base64" else _as_is
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": encode(row), "index": i}
            for i, row in enumerate(embeddings)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _as_is(row: np.ndarray) -> np.ndarray:
    return row  # orjson serialises numpy arrays directly


def model_card(info: ModelInfo) -> dict[str, Any]:
    """OpenAI's model card plus ``task`` (``"embeddings"`` or ``"rerank"``)."""
    return {"id": info.name, "object": "model", "created": info.created, "owned_by": "ovembed", "task": info.task}


def model_list(infos: Iterable[ModelInfo]) -> dict[str, Any]:
    return {"object": "list", "data": [model_card(info) for info in infos]}
