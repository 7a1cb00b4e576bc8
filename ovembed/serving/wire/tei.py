"""Hugging Face text-embeddings-inference's ``POST /rerank``.

Request: ``{"query", "texts": [str], "raw_scores"?: false, "return_text"?: false, "truncate"?,
"truncation_direction"?: "right" | "left"}`` (TEI accepts ``Right``/``Left`` too). TEI serves one
model, so ``model`` is optional here: without it the one rerank model served answers.
Response: ``[{"index", "score", "text"?}]``, best first; ``score`` is the sigmoid of the logit, or
the logit with ``raw_scores``. ``truncate`` false (TEI's default) chunks long documents instead of
failing, and a query over half the model's window is a 400 (TEI refuses over-long inputs without
``truncate``); true keeps one window per text, cut on ``truncation_direction``'s side, and cuts the query.

Errors use TEI's body ``{"error", "error_type"}``; :func:`error_type` names the type per status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovembed.errors import InvalidInput
from ovembed.serving.api import RerankOptions, TruncationDirection
from ovembed.serving.usecases.rerank import Ranking, RerankRequest
from ovembed.serving.wire import fields

_DIRECTIONS: dict[str, TruncationDirection] = {"right": "right", "left": "left"}


@dataclass(frozen=True)
class TeiRerank:
    request: RerankRequest
    raw_scores: bool = False
    return_text: bool = False


def parse_rerank_request(body: fields.JsonObject, *, max_documents: int) -> TeiRerank:
    query = body.get("query")
    if not isinstance(query, str):
        raise InvalidInput("Missing required field 'query'" if query is None else "'query' must be a string",
                           param="query")
    texts = body.get("texts")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidInput("'texts' must be a list of strings", param="texts")
    if not texts:
        raise InvalidInput("`texts` cannot be empty", param="texts")
    fields.check_count(len(texts), max_documents, param="texts")
    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise InvalidInput("'model' must be a non-empty string", param="model")
    direction_text = body.get("truncation_direction")
    direction: TruncationDirection = "right"
    if direction_text is not None:
        found = _DIRECTIONS.get(direction_text.lower()) if isinstance(direction_text, str) else None
        if found is None:
            raise InvalidInput("'truncation_direction' must be 'right' or 'left'", param="truncation_direction")
        direction = found
    truncate = bool(fields.optional_bool(body, "truncate"))
    options = RerankOptions(truncate=truncate, direction=direction, truncate_query=truncate,
                            instruction=fields.optional_instruction(body))
    return TeiRerank(RerankRequest(model, query, tuple(texts), options=options),
                     raw_scores=bool(fields.optional_bool(body, "raw_scores")),
                     return_text=bool(fields.optional_bool(body, "return_text")))


def rerank_response(parsed: TeiRerank, ranking: Ranking) -> list[dict[str, Any]]:
    scores = ranking.raw_scores if parsed.raw_scores else ranking.scores
    out = []
    for index in ranking.order:
        item: dict[str, Any] = {"index": index, "score": float(scores[index])}
        if parsed.return_text:
            item["text"] = parsed.request.documents[index]
        out.append(item)
    return out


def error_type(status: int, message: str) -> str:
    """TEI's ``error_type`` for a status: validation, empty, overloaded, unhealthy or backend."""
    if status == 429:
        return "overloaded"
    if status == 503:
        return "unhealthy"
    if status >= 500:
        return "backend"
    return "empty" if "cannot be empty" in message else "validation"
