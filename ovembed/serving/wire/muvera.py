"""MUVERA on ``/v3/embeddings`` (an ovembed extension for token models): the request's ``muvera`` field and the
response's record of the parameters used.

Request: ``"muvera": true`` (the model's defaults) or ``{"k_sim", "dim_proj", "r_reps", "seed", "final_dim"}``
(any subset; integers, ``final_dim`` may be null); absent, null or false: token vectors as usual. The names are
FastEmbed's ``Muvera`` arguments (``seed`` for its ``random_seed``, as OpenAI and vLLM name seeds); the existing
``input_type`` picks the side: ``query``/``search_query`` sums per partition, ``document``/``search_document``
(the default) averages and fills empty partitions. Unknown keys are a 400: a misspelt parameter would otherwise
change every vector silently.

Response: OpenAI's dense shape (``"embedding"`` per input, every ``encoding_format`` of a dense vector) plus
``"muvera": {"k_sim", "dim_proj", "r_reps", "seed", "final_dim", "input_type", "dimensions"}``.
"""

from __future__ import annotations

from typing import Any

from ovembed.errors import InvalidInput
from ovembed.heads.muvera import FIELDS
from ovembed.serving.usecases.muvera import MuveraEmbeddings
from ovembed.serving.wire import fields
from ovembed.serving.wire.compact import COMPACT_TYPES
from ovembed.serving.wire.openai import EncodingFormat, VllmFields, embeddings_response

FIELD = "muvera"
FORMATS: tuple[EncodingFormat, ...] = ("float", "base64", *COMPACT_TYPES)


def parse_muvera(body: fields.JsonObject) -> dict[str, Any] | None:
    """None: no MUVERA; otherwise the parameters the request changes (``{}``: the model's defaults)."""
    value = body.get(FIELD)
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"'muvera' must be true or an object with any of {', '.join(FIELDS)}", param=FIELD)
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"'muvera' has unknown field(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})",
                           param=f"muvera.{unknown[0]}")
    changes: dict[str, Any] = {}
    for key, item in value.items():
        if item is None and key == "final_dim":
            changes[key] = None
        elif fields.is_int(item):
            changes[key] = int(item)
        else:
            raise InvalidInput(f"'muvera.{key}' must be an integer", param=f"muvera.{key}")
    return changes


def openai_response(result: MuveraEmbeddings, encoding_format: EncodingFormat, vllm: VllmFields) -> dict[str, Any]:
    body = embeddings_response(result.info.name, result.vectors, result.prompt_tokens, encoding_format, vllm=vllm)
    body[FIELD] = {**result.params.as_dict(), "input_type": result.kind,
                   "dimensions": int(result.vectors.shape[1])}
    return body
