"""Sparse embeddings on the wire: TEI's ``POST /embed_sparse`` and the ``"sparse"`` encoding of OpenAI's
``/v3/embeddings`` (an ovembed extension).

TEI request: ``{"inputs": str | [str], "truncate"?: false, "truncation_direction"?: "right" | "left"
(TEI's ``Right``/``Left`` too), "prompt_name"?, "model"?}``; response ``[[{"index", "value"}, ...], ...]``,
one list per input, indices ascending (TEI's shape). TEI serves one model, so ``model`` is optional: without
it the one sparse model served answers.

OpenAI: ``"encoding_format": "sparse"`` turns each item's ``embedding`` into ``{"indices": [...],
"values": [...]}`` (indices ascending), usage as for dense embeddings.

Pruning, both routes (ovembed extensions): ``top_k`` (keep the N heaviest weights, N >= 1) and
``threshold`` (keep weights above it, >= 0). Without them the model's graph.pbtxt defaults apply: out of
the box every non-zero weight, as TEI returns them (a SPLADE vector has ~50-300 of them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ovembed.errors import InvalidInput
from ovembed.serving.api import DEFAULT_SPARSE, SparseOptions, SparseVector
from ovembed.serving.usecases.sparse import SparseEmbeddings, SparseRequest
from ovembed.serving.wire import fields

_DIRECTIONS = {"right": "right", "left": "left"}


def parse_pruning(body: fields.JsonObject) -> SparseOptions:
    """``top_k`` and ``threshold``; neither: the model's defaults."""
    top_k = fields.optional_int(body, "top_k", minimum=1)
    threshold = body.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise InvalidInput("'threshold' must be a number", param="threshold")
        if threshold < 0:
            raise InvalidInput(f"'threshold' must be at least 0, got {threshold}", param="threshold")
    if top_k is None and threshold is None:
        return DEFAULT_SPARSE
    return SparseOptions(top_k=top_k, threshold=None if threshold is None else float(threshold))


def _inputs(value: object) -> tuple[str, ...]:
    if value is None:
        raise InvalidInput("Missing required field 'inputs'", param="inputs")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("'inputs' must be a string or a list of strings", param="inputs")
    if not value:
        raise InvalidInput("`inputs` cannot be empty", param="inputs")
    for i, text in enumerate(value):
        if not text:
            raise InvalidInput(f"`inputs[{i}]` cannot be empty", param="inputs")
    return tuple(value)


@dataclass(frozen=True)
class TeiSparse:
    request: SparseRequest


def parse_embed_sparse_request(body: fields.JsonObject, *, max_inputs: int) -> TeiSparse:
    inputs = _inputs(body.get("inputs"))
    fields.check_count(len(inputs), max_inputs, param="inputs")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidInput("'model' must be a non-empty string", param="model")
    direction_text = body.get("truncation_direction")
    direction = "right"
    if direction_text is not None:
        found = _DIRECTIONS.get(direction_text.lower()) if isinstance(direction_text, str) else None
        if found is None:
            raise InvalidInput("'truncation_direction' must be 'right' or 'left'", param="truncation_direction")
        direction = found
    prompt_name = body.get("prompt_name")
    if prompt_name is not None and (not isinstance(prompt_name, str) or not prompt_name):
        raise InvalidInput("'prompt_name' must be a non-empty string", param="prompt_name")
    return TeiSparse(SparseRequest(model, inputs, truncate=fields.optional_bool(body, "truncate"),
                                   prompt_name=prompt_name, truncation_direction=direction,  # type: ignore[arg-type]
                                   pruning=parse_pruning(body)))


def tei_response(result: SparseEmbeddings) -> list[list[dict[str, Any]]]:
    return [[{"index": i, "value": v} for i, v in zip(vec.indices.tolist(), vec.values.tolist(), strict=True)]
            for vec in result.vectors]


def openai_item(vector: SparseVector) -> dict[str, list[Any]]:
    return {"indices": vector.indices.tolist(), "values": vector.values.tolist()}


def openai_response(result: SparseEmbeddings) -> dict[str, Any]:
    tokens = result.prompt_tokens
    return {
        "object": "list",
        "data": [{"object": "embedding", "embedding": openai_item(v), "index": i}
                 for i, v in enumerate(result.vectors)],
        "model": result.info.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
