"""vLLM's extra fields on OpenAI-style embedding requests, and the field policy for them.

Every field either works, or is a 400 naming it; none changes the numbers silently:

- ``embed_dtype`` (``float32``, ``float16``, ``bfloat16``) and ``endianness`` (``native``, ``big``,
  ``little``): how ``base64`` and ``bytes`` vectors are written (:mod:`ovembed.serving.wire.vectors`).
  With ``float`` output the numbers are float32 whatever ``embed_dtype`` says, as vLLM does; with the
  compact formats (int8, binary, ...) anything but the defaults is a 400. vLLM's ``fp8_e4m3`` and
  ``fp8_e5m2`` are a 400 (not offered).
- ``normalize`` (older vLLM) or ``use_activation`` (vLLM now): unit-length vectors or not. A model
  that does not normalise is normalised on request; one whose graph normalises cannot give raw
  vectors, so ``false`` there is a 400 (:func:`ovembed.serving.usecases.embed.check_normalize`).
- ``truncate_prompt_tokens``: -1 (the model's maximum) or N: every input is cut to N tokens, the
  model's special tokens kept; ``truncation_side`` says which end is cut, and without it the start
  is (vLLM keeps the last N tokens). More than the model's maximum is vLLM's 400.
- ``add_special_tokens`` false: texts are embedded without [CLS]/[SEP] (or the model's own).

Accepted and ignored (they never change a vector): OpenAI's ``user``; vLLM's ``request_id``,
``priority``, ``cache_salt``, ``mm_processor_kwargs``; anything an SDK adds through ``extra_body`` that
is not listed in docs/compatibility.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ovembed.errors import InvalidInput
from ovembed.serving.wire import fields
from ovembed.serving.wire.rerank import truncate_prompt_tokens
from ovembed.serving.wire.vectors import EMBED_DTYPES, ENDIANNESS, EmbedDType, Endianness

IGNORED = ("user", "request_id", "priority", "cache_salt", "mm_processor_kwargs")
_SIDES: tuple[Literal["left", "right"], ...] = ("left", "right")


@dataclass(frozen=True)
class VllmFields:
    embed_dtype: EmbedDType = "float32"
    endianness: Endianness = "native"
    normalize: bool | None = None
    truncate_prompt_tokens: int | None = None
    truncation_side: Literal["left", "right"] | None = None  # None: the request did not say
    add_special_tokens: bool = True

    @property
    def default_encoding(self) -> bool:
        return self.embed_dtype == "float32" and self.endianness == "native"

    def request_fields(self) -> dict[str, Any]:
        """Keyword arguments of :class:`ovembed.serving.usecases.embed.EmbedRequest`."""
        return {"normalize": self.normalize, "truncate_prompt_tokens": self.truncate_prompt_tokens,
                "add_special_tokens": self.add_special_tokens}

    @property
    def changes_embedding(self) -> str | None:
        """The first field that asks for something other than the model's default, if any."""
        if self.normalize is not None:
            return "normalize"
        if self.truncate_prompt_tokens is not None:
            return "truncate_prompt_tokens"
        if not self.add_special_tokens:
            return "add_special_tokens"
        return None


DEFAULT_VLLM = VllmFields()


def parse_vllm_fields(body: fields.JsonObject) -> VllmFields:
    dtype = body.get("embed_dtype")
    if dtype in ("fp8_e4m3", "fp8_e5m2"):
        raise InvalidInput(f"'embed_dtype' {dtype} is not supported: use float32, float16 or bfloat16",
                           param="embed_dtype")
    normalize = fields.optional_bool(body, "normalize")
    activation = fields.optional_bool(body, "use_activation")
    if normalize is not None and activation is not None and normalize != activation:
        raise InvalidInput("'normalize' and 'use_activation' disagree: send one of them", param="normalize")
    special = fields.optional_bool(body, "add_special_tokens")
    return VllmFields(
        embed_dtype=fields.optional_choice(body, "embed_dtype", EMBED_DTYPES) or "float32",
        endianness=fields.optional_choice(body, "endianness", ENDIANNESS) or "native",
        normalize=normalize if normalize is not None else activation,
        truncate_prompt_tokens=truncate_prompt_tokens(body),
        truncation_side=fields.optional_choice(body, "truncation_side", _SIDES),
        add_special_tokens=True if special is None else special,
    )
