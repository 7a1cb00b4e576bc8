"""Several outputs in one request on the wire (an ovembed extension of OpenAI's ``/v3/embeddings``, for a bge_m3
model): ``{"model", "input", "output": ["dense", "sparse", "multivector"], "truncate"?, "prompt_name"?,
"truncation_direction"?, "top_k"?, "threshold"?}``. Each ``data`` item carries the outputs asked, under
``embedding`` (dense, floats), ``sparse_embedding`` (``{"indices", "values"}``, token ids ascending) and
``multivector`` (``[n_tokens][dim]`` floats); usage as for embeddings. Floats only (``encoding_format`` "float").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.serving.api import OUTPUTS, Output
from ovembed.serving.usecases.multi import MultiEmbeddings, MultiRequest
from ovembed.serving.wire import fields
from ovembed.serving.wire.openai import parse_input
from ovembed.serving.wire.sparse import openai_item, parse_pruning

_DIRECTIONS = ("right", "left")
_REFUSED = ("dimensions", "chunking", "embed_dtype")  # they change one output only: ask for it alone


def parse_outputs(value: object) -> tuple[Output, ...]:
    """``output``: a non-empty list of distinct names among :data:`OUTPUTS` (one name alone is accepted too)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in OUTPUTS for n in names):
        raise InvalidInput(f"'output' must be a list of some of {', '.join(OUTPUTS)}", param="output")
    if len(set(names)) != len(names):
        raise InvalidInput("'output' lists an output twice", param="output")
    return tuple(names)  # type: ignore[arg-type]


def parse_multi_request(body: fields.JsonObject, *, max_inputs: int) -> MultiRequest:
    model = fields.required_str(body, "model")
    inputs = parse_input(body.get("input"))
    fields.check_count(len(inputs), max_inputs)
    outputs = parse_outputs(body.get("output"))
    encoding = fields.optional_choice(body, "encoding_format", ("float",))
    del encoding  # floats only
    for name in _REFUSED:
        if body.get(name) is not None:
            raise InvalidInput(f"'{name}' does not apply to a request with 'output' (ask for that output alone)",
                               param=name)
    pruning = parse_pruning(body)
    if "sparse" not in outputs and (body.get("top_k") is not None or body.get("threshold") is not None):
        raise InvalidInput("'top_k' and 'threshold' apply to the sparse output: add \"sparse\" to 'output'",
                           param="top_k" if body.get("top_k") is not None else "threshold")
    prompt_name = body.get("prompt_name")
    if prompt_name is not None and not isinstance(prompt_name, str):
        raise InvalidInput("'prompt_name' must be a string", param="prompt_name")
    direction = fields.optional_choice(body, "truncation_direction", _DIRECTIONS) or "right"
    return MultiRequest(model, inputs, outputs, truncate=fields.optional_bool(body, "truncate"),
                        prompt_name=prompt_name, truncation_direction=direction, pruning=pruning)


def openai_response(found: MultiEmbeddings) -> dict[str, Any]:
    result = found.result
    data: list[dict[str, Any]] = []
    for i in range(len(result.token_counts)):
        item: dict[str, Any] = {"object": "embedding", "index": i}
        if result.dense is not None:
            item["embedding"] = np.ascontiguousarray(result.dense[i], dtype=np.float32)
        if result.sparse is not None:
            item["sparse_embedding"] = openai_item(result.sparse[i])
        if result.multivector is not None:
            item["multivector"] = np.ascontiguousarray(result.multivector[i], dtype=np.float32)
        data.append(item)
    tokens = result.prompt_tokens
    return {"object": "list", "data": data, "model": found.info.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
