"""vLLM's ``POST /tokenize`` and ``POST /detokenize``.

``/tokenize``: ``{"model"?, "prompt": str, "add_special_tokens"?: true}`` ->
``{"count", "max_model_len", "tokens"}``. vLLM's chat form (``messages``) and ``return_token_strs:
true`` are a 400 (not offered); ``model`` may be left out when one model is served, as with vLLM.
``/detokenize``: ``{"model"?, "tokens": [int]}`` -> ``{"prompt"}``, decoded by the model's
tokenizer.json (special tokens skipped, as vLLM does). OVMS's ``/v3/tokenize`` is
:mod:`ovembed.serving.wire.tokenize`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovembed.errors import InvalidInput
from ovembed.serving.wire import fields


@dataclass(frozen=True)
class VllmTokenize:
    model: str | None
    prompt: str
    add_special_tokens: bool = True


@dataclass(frozen=True)
class VllmDetokenize:
    model: str | None
    tokens: tuple[int, ...]


def _model(body: fields.JsonObject) -> str | None:
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidInput("'model' must be a non-empty string", param="model")
    return model


def parse_tokenize(body: fields.JsonObject) -> VllmTokenize:
    if body.get("messages") is not None:
        raise InvalidInput("'messages' (vLLM's chat tokenization) is not supported: send 'prompt'", param="messages")
    if fields.optional_bool(body, "return_token_strs"):
        raise InvalidInput("'return_token_strs' is not supported: decode ids with /detokenize",
                           param="return_token_strs")
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise InvalidInput("Missing required field 'prompt'" if prompt is None else "'prompt' must be a string",
                           param="prompt")
    special = fields.optional_bool(body, "add_special_tokens")
    return VllmTokenize(_model(body), prompt, True if special is None else special)


def parse_detokenize(body: fields.JsonObject, *, max_tokens: int) -> VllmDetokenize:
    tokens = body.get("tokens")
    if tokens is None:
        raise InvalidInput("Missing required field 'tokens'", param="tokens")
    if not isinstance(tokens, list) or not all(fields.is_int(t) for t in tokens):
        raise InvalidInput("'tokens' must be a list of integer token ids", param="tokens")
    if len(tokens) > max_tokens:
        raise InvalidInput(f"'tokens' holds {len(tokens)} ids, the limit is {max_tokens} (--max_request_tokens)",
                           param="tokens")
    return VllmDetokenize(_model(body), tuple(tokens))


def tokenize_response(ids: list[int], max_model_len: int) -> dict[str, Any]:
    return {"count": len(ids), "max_model_len": max_model_len, "tokens": ids}


def detokenize_response(text: str) -> dict[str, Any]:
    return {"prompt": text}
