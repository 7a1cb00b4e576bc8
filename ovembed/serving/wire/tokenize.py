"""OVMS's ``POST /v3/tokenize``: ``{"model", "text", ...}`` -> ``{"tokens": [...]}``.

A string gives a flat list of ids, a list of strings a list of lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ovembed.errors import InvalidInput
from ovembed.serving.wire import fields

PaddingSide = Literal["left", "right"]
PADDING_SIDES: tuple[PaddingSide, ...] = ("left", "right")


@dataclass(frozen=True)
class TokenizeRequest:
    model: str
    texts: tuple[str, ...]
    single: bool  # ``text`` was one string: answer with one flat list
    max_length: int | None = None
    pad_to_max_length: bool = False
    add_special_tokens: bool = True
    padding_side: PaddingSide = "right"


def parse_tokenize_request(body: fields.JsonObject, *, max_inputs: int) -> TokenizeRequest:
    model = fields.required_str(body, "model")
    value = body.get("text")
    if value is None:
        raise InvalidInput("Missing required field 'text'", param="text")
    if isinstance(value, str):
        texts, single = (value,), True
    elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        texts, single = tuple(value), False
    elif isinstance(value, list) and not value:
        raise InvalidInput("'text' must not be an empty list", param="text")
    else:
        raise InvalidInput("'text' must be a string or a list of strings", param="text")
    fields.check_count(len(texts), max_inputs, param="text")
    pad = fields.optional_bool(body, "pad_to_max_length")
    special = fields.optional_bool(body, "add_special_tokens")
    return TokenizeRequest(
        model=model,
        texts=texts,
        single=single,
        max_length=fields.optional_int(body, "max_length", minimum=1),
        pad_to_max_length=bool(pad),
        add_special_tokens=True if special is None else special,
        padding_side=fields.optional_choice(body, "padding_side", PADDING_SIDES) or "right",
    )


def tokenize_response(request: TokenizeRequest, ids: list[list[int]]) -> dict[str, Any]:
    return {"tokens": ids[0] if request.single else ids}
