"""Typed readers for JSON request bodies.

Every protocol parses through these helpers, so a wrong type anywhere gives the same kind of
400 (``InvalidInput`` naming the field in ``param``). ``None`` (JSON null) counts as absent.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson

from ovembed.errors import InvalidInput, PayloadTooLarge

JsonObject = dict[str, Any]
_C = TypeVar("_C", bound=str)


def load_object(body: bytes) -> JsonObject:
    """The request body as a JSON object; anything else is a 400."""
    if not body.strip():
        raise InvalidInput("Invalid JSON body: the request body is empty")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Invalid JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("Invalid JSON body: expected a JSON object")
    return data


def is_int(value: object) -> bool:
    """A JSON integer (``True``/``False`` are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def required_str(body: JsonObject, key: str, *, message: str | None = None) -> str:
    value = body.get(key)
    if value is None:
        raise InvalidInput(message or f"Missing required field '{key}'", param=key)
    if not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be a string", param=key)
    if not value:
        raise InvalidInput(message or f"'{key}' must not be empty", param=key)
    return value


def optional_instruction(body: JsonObject) -> str | None:
    """``instruction``: the task instruction a decoder reranker's prompt template takes (absent: the model's)."""
    value = body.get("instruction")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("'instruction' must be a non-empty string", param="instruction")
    return value


def optional_bool(body: JsonObject, key: str) -> bool | None:
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise InvalidInput(f"'{key}' must be a boolean", param=key)


def optional_int(body: JsonObject, key: str, *, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not is_int(value):
        raise InvalidInput(f"'{key}' must be an integer", param=key)
    if value < minimum:
        raise InvalidInput(f"'{key}' must be at least {minimum}, got {value}", param=key)
    return int(value)


def optional_choice(body: JsonObject, key: str, choices: tuple[_C, ...]) -> _C | None:
    value = body.get(key)
    if value is None:
        return None
    for choice in choices:
        if value == choice:
            return choice
    allowed = ", ".join(f"'{c}'" for c in choices)
    raise InvalidInput(f"'{key}' must be one of {allowed}, got {_show(value)}", param=key)


def check_count(count: int, limit: int, *, param: str = "input") -> None:
    """At most ``limit`` inputs in one request (413)."""
    if count > limit:
        raise PayloadTooLarge(
            f"Too many inputs: {count} in one request, the limit is {limit}", param=param
        )


def _show(value: object) -> str:
    """A short rendering of a client value for an error message."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    text = orjson.dumps(value).decode()
    return text if len(text) <= 40 else text[:37] + "..."
