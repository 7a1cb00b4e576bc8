"""Sequence classification on the wire: TEI's ``POST /predict`` and vLLM's ``POST /classify``.

TEI request: ``{"inputs", "raw_scores"?: false, "truncate"?: false, "truncation_direction"?: "right" | "left",
"model"?}``; ``inputs`` is TEI's ``PredictInput``: a string, a pair ``[a, b]`` (``[a]`` is one text), or a
batch ``[[a], [a, b], ...]`` of texts and pairs. Response (TEI's ``PredictResponse``): for one input a list
of ``{"score", "label"}``, every label, best first; for a batch one such list per input. ``score`` is the
probability (softmax, or sigmoid for multi-label models), the logit with ``raw_scores``. TEI serves one model,
so ``model`` is optional: without it the one classifier served answers.

vLLM request: ``{"model"?, "input": str | [str], "truncate_prompt_tokens"?, "use_activation"? (older vLLM:
``activation``)}``; ``user``, ``priority``, ``request_id`` are accepted and ignored. Response (vLLM's
``ClassificationResponse``): ``{"id", "object": "list", "created", "model", "data": [{"index", "label",
"probs", "num_classes"}], "usage": {"prompt_tokens", "total_tokens", "completion_tokens": 0}}``; ``label`` is
the top label, ``probs`` every label's probability in label order (logits with ``use_activation`` false).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ovembed.errors import InvalidInput
from ovembed.serving.api import ClassifyInput, TruncationDirection
from ovembed.serving.usecases.classify import Classification, ClassifyRequest
from ovembed.serving.wire import fields
from ovembed.serving.wire.rerank import truncate_prompt_tokens, use_activation

_DIRECTIONS: dict[str, TruncationDirection] = {"right": "right", "left": "left"}
_SHAPE = ("'inputs' must be a string, a pair of strings [string, string] or a batch of mixed strings and "
          "pairs [[string], [string, string], ...]")


@dataclass(frozen=True)
class TeiPredict:
    request: ClassifyRequest
    batch: bool  # the inputs were a batch: one list of predictions per input
    raw_scores: bool = False


def _sequence(value: list[Any], index: int | None) -> ClassifyInput:
    if not all(isinstance(v, str) for v in value) or not 1 <= len(value) <= 2:
        raise InvalidInput(_SHAPE, param="inputs")
    for text in value:
        if not text:
            where = f"`inputs[{index}]`" if index is not None else "`inputs`"
            raise InvalidInput(f"{where} cannot be empty", param="inputs")
    return value[0] if len(value) == 1 else (value[0], value[1])


def parse_predict_inputs(value: object) -> tuple[tuple[ClassifyInput, ...], bool]:
    """TEI's ``PredictInput``: the inputs and whether they were a batch."""
    if value is None:
        raise InvalidInput("Missing required field 'inputs'", param="inputs")
    if isinstance(value, str):
        return (_sequence([value], None),), False
    if not isinstance(value, list):
        raise InvalidInput(_SHAPE, param="inputs")
    if not value:
        raise InvalidInput("`inputs` cannot be empty", param="inputs")
    if isinstance(value[0], str):
        return (_sequence(value, None),), False
    if not all(isinstance(v, list) for v in value):
        raise InvalidInput(_SHAPE, param="inputs")
    return tuple(_sequence(v, i) for i, v in enumerate(value)), True


def _direction(body: fields.JsonObject) -> TruncationDirection:
    text = body.get("truncation_direction")
    if text is None:
        return "right"
    found = _DIRECTIONS.get(text.lower()) if isinstance(text, str) else None
    if found is None:
        raise InvalidInput("'truncation_direction' must be 'right' or 'left'", param="truncation_direction")
    return found


def _model(body: fields.JsonObject) -> str | None:
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidInput("'model' must be a non-empty string", param="model")
    return model


def parse_predict_request(body: fields.JsonObject, *, max_inputs: int) -> TeiPredict:
    inputs, batch = parse_predict_inputs(body.get("inputs"))
    fields.check_count(len(inputs), max_inputs, param="inputs")
    request = ClassifyRequest(_model(body), inputs, truncate=bool(fields.optional_bool(body, "truncate")),
                              truncation_direction=_direction(body))
    return TeiPredict(request, batch, raw_scores=bool(fields.optional_bool(body, "raw_scores")))


def predict_response(parsed: TeiPredict, result: Classification) -> list[Any]:
    scores = result.logits if parsed.raw_scores else result.probs
    per_input = [[{"score": float(scores[row, col]), "label": result.labels[col]}
                  for col in result.order(row, raw=parsed.raw_scores)] for row in range(len(scores))]
    return per_input if parsed.batch else per_input[0]


@dataclass(frozen=True)
class VllmClassify:
    request: ClassifyRequest
    use_activation: bool = True


def parse_classify_request(body: fields.JsonObject, *, max_inputs: int) -> VllmClassify:
    value = body.get("input")
    if value is None:
        raise InvalidInput("Missing required field 'input'", param="input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput("'input' must be a string or a list of strings", param="input")
    if not texts:
        raise InvalidInput("'input' cannot be empty", param="input")
    for i, text in enumerate(texts):
        if not text:
            raise InvalidInput(f"input[{i}] cannot be empty", param="input")
    fields.check_count(len(texts), max_inputs, param="input")
    request = ClassifyRequest(_model(body), tuple(texts), truncate_prompt_tokens=truncate_prompt_tokens(body))
    return VllmClassify(request, use_activation(body))


def classify_response(parsed: VllmClassify, result: Classification, response_id: str) -> dict[str, Any]:
    values = result.probs if parsed.use_activation else result.logits
    tokens = result.prompt_tokens
    n = len(result.labels)
    return {
        "id": response_id,
        "object": "list",
        "created": int(time.time()),
        "model": result.info.name,
        "data": [{"index": row, "label": result.labels[result.order(row)[0]], "probs": values[row].tolist(),
                  "num_classes": n} for row in range(len(values))],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
    }
