"""vLLM's ``POST /score`` (and ``/v1/score``): score text pairs with a rerank model (or, as vLLM does,
the cosine similarity of an embeddings model's vectors).

Request: ``{"model", "text_1", "text_2"}`` (or vLLM's newer names for the two sides: ``queries`` with
``documents`` or ``items``, ``data_1`` with ``data_2``), each side a string or a list of strings:
1:1, 1:N (one first text against every second one) or N:N (pairwise); other lengths are vLLM's 400
``Input lengths must be either 1:1, 1:N or N:N``. ``use_activation`` (older vLLM: ``activation``)
false gives raw logits; ``truncate_prompt_tokens`` as for rerank (:mod:`ovembed.serving.wire.rerank`).
A first text over the model's query limit is a 400 unless ``truncate_prompt_tokens`` is set (vLLM
refuses an over-long pair). ``instruction`` as for rerank (a decoder reranker's template instruction).
vLLM's ``user``, ``request_id`` and ``priority`` are accepted and ignored.

Response: ``{"id", "object": "list", "created", "model", "data": [{"index", "object": "score", "score"}],
"usage": {"prompt_tokens", "total_tokens", "completion_tokens": 0}}``, in pair order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ovembed.errors import InvalidInput
from ovembed.serving.api import RerankOptions
from ovembed.serving.usecases.score import ScoreRequest, Scores
from ovembed.serving.wire import fields
from ovembed.serving.wire.rerank import truncate_prompt_tokens, use_activation

# vLLM's accepted names for the two sides, in the order it tries them.
SIDES = (("text_1", "text_2"), ("queries", "documents"), ("queries", "items"), ("data_1", "data_2"))


@dataclass(frozen=True)
class ParsedScore:
    request: ScoreRequest
    use_activation: bool = True


def _side(body: fields.JsonObject, key: str) -> list[str]:
    value = body.get(key)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidInput(f"'{key}' must be a string or a list of strings", param=key)


def parse_score_request(body: fields.JsonObject, *, max_pairs: int) -> ParsedScore:
    model = body.get("model")  # vLLM: optional; absent, the one rerank model served answers
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidInput("'model' must be a non-empty string", param="model")
    names = next(((a, b) for a, b in SIDES if a in body and b in body), None)
    if names is None:
        raise InvalidInput("Missing required fields 'text_1' and 'text_2' (or 'queries' and 'documents')",
                           param="text_1")
    first, second = _side(body, names[0]), _side(body, names[1])
    if len(first) > 1 and len(first) != len(second):
        raise InvalidInput("Input lengths must be either 1:1, 1:N or N:N", param=names[0])
    if not first:
        raise InvalidInput("At least one text element must be given", param=names[0])
    if not second:
        raise InvalidInput("At least one text_pair element must be given", param=names[1])
    fields.check_count(len(second), max_pairs, param=names[1])
    if len(first) == 1:
        first = first * len(second)
    cap = truncate_prompt_tokens(body)
    options = RerankOptions(truncate=cap is not None, truncate_query=cap is not None,
                            instruction=fields.optional_instruction(body))
    request = ScoreRequest(model, tuple(zip(first, second, strict=True)), options, truncate_prompt_tokens=cap)
    return ParsedScore(request, use_activation(body))


def score_response(parsed: ParsedScore, scores: Scores, response_id: str) -> dict[str, Any]:
    values = scores.scores if parsed.use_activation else scores.raw_scores
    tokens = scores.prompt_tokens
    return {
        "id": response_id,
        "object": "list",
        "created": int(time.time()),
        "model": scores.info.name,
        "data": [{"index": i, "object": "score", "score": float(v)} for i, v in enumerate(values)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
    }
