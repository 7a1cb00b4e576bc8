"""Rerank in the Cohere shape (v1 and v2), which OVMS's ``/v3/rerank``, Jina and vLLM share.

Request: ``{"model", "query", "documents": [str | {"text": str, ...}], "top_n"?, "return_documents"?,
"max_tokens_per_doc"?, "rank_fields"?, "instruction"?}``, plus vLLM's ``use_activation`` (older vLLM: ``activation``;
false: ``relevance_score`` is the raw logit) and ``truncate_prompt_tokens``. ``instruction`` replaces a
decoder reranker's default task instruction in its prompt template (a 400 on a cross-encoder). Object
documents are ranked on ``text``, or with ``rank_fields`` (Cohere v1) on ``"field: value"`` lines of
those fields. Unknown fields (Cohere's ``priority``, ``relevant_spans``, ``max_chunks_per_doc``, vLLM's ``user``,
``request_id``, ``priority``) are accepted and ignored: none changes a score.

The same body means slightly different things to the peers that send it, so each path answers as
its peer documents it (a :class:`Dialect`, chosen by the route):

- **vLLM / Jina** (``/rerank``, ``/v1/rerank``, and ``/score``): ``document`` is in every result unless
  ``return_documents`` is false (vLLM always returns it, Jina defaults to true); ``top_n`` 0 means every
  document (vLLM's default); a query longer than the model takes is a 400 (vLLM refuses a pair over
  the window) unless ``truncate_prompt_tokens`` asks for truncation. Cohere v1 clients also use
  ``/v1/rerank``: its SDK reads ``document`` as optional, so the extra field is harmless to them,
  while its absence breaks vLLM and Jina clients.
- **Cohere v2 / OVMS** (``/v2/rerank``, ``/v3/rerank``, ``/v3/v1/rerank``, ``/v3/v2/rerank``):
  ``document`` only with ``return_documents: true``; ``top_n`` at least 1; a query over half the
  model's window is cut to it (Cohere's docs: "If your query is larger than 256 tokens, it will be
  truncated to the first 256 tokens"; 256 of Cohere's 512).

Long documents are split into chunks (the best chunk scores) on every path instead of failing:
vLLM would refuse such a pair; a score for it is more useful than a 400, and it never changes the
score of a document that fits. ``truncate_prompt_tokens`` -1 (or the window) keeps one window per
document instead (vLLM's truncation); a smaller value cannot be honoured exactly and is a 400.

Response: ``{"id", "model", "results": [{"index", "relevance_score", "document"?}], "meta": {...},
"usage": {"prompt_tokens", "total_tokens"}}``, best first: ``id``/``results``/``meta`` are Cohere's
(its SDK reads ``meta.tokens``), ``usage`` what OpenAI-style clients (Jina, vLLM) read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ovembed.errors import InvalidInput
from ovembed.serving.api import RerankOptions
from ovembed.serving.usecases.rerank import Ranking, RerankRequest
from ovembed.serving.wire import fields

Document = str | dict[str, Any]


@dataclass(frozen=True)
class Dialect:
    """How one peer's clients expect the shared body to be read (see the module docstring)."""

    name: str
    return_documents: bool  # the default of return_documents
    top_n_zero_is_all: bool  # vLLM: top_n 0 means every document
    truncate_query: bool  # the default for a query over the model's limit: cut (True) or 400


VLLM = Dialect("vllm", return_documents=True, top_n_zero_is_all=True, truncate_query=False)
COHERE = Dialect("cohere", return_documents=False, top_n_zero_is_all=False, truncate_query=True)


@dataclass(frozen=True)
class CohereRerank:
    request: RerankRequest
    documents: tuple[Document, ...]  # as sent, returned with return_documents
    return_documents: bool = False
    use_activation: bool = True  # False: relevance_score is the raw logit (vLLM's use_activation)


def _rank_text(doc: dict[str, Any], index: int, rank_fields: tuple[str, ...] | None) -> str:
    where = f"documents[{index}]"
    if rank_fields:
        lines = []
        for name in rank_fields:
            value = doc.get(name)
            if not isinstance(value, str):
                raise InvalidInput(f"'{where}' has no string field '{name}' named in 'rank_fields'",
                                   param="documents")
            lines.append(f"{name}: {value}")
        return "\n".join(lines)
    text = doc.get("text")
    if not isinstance(text, str):
        raise InvalidInput(f"'{where}' must be a string or an object with a string 'text'", param="documents")
    return text


def _rank_fields(body: fields.JsonObject) -> tuple[str, ...] | None:
    value = body.get("rank_fields")
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise InvalidInput("'rank_fields' must be a non-empty list of field names", param="rank_fields")
    return tuple(value)


def parse_documents(value: object, rank_fields: tuple[str, ...] | None = None,
                    *, key: str = "documents") -> tuple[tuple[Document, ...], tuple[str, ...]]:
    """(documents as sent, the text each is ranked on)."""
    if value is None:
        raise InvalidInput(f"Missing required field '{key}'", param=key)
    if not isinstance(value, list):
        raise InvalidInput(f"'{key}' must be a list of strings or of objects with 'text'", param=key)
    if not value:
        raise InvalidInput(f"'{key}' must not be empty", param=key)
    texts: list[str] = []
    for i, doc in enumerate(value):
        if isinstance(doc, str):
            texts.append(doc)
        elif isinstance(doc, dict):
            texts.append(_rank_text(doc, i, rank_fields))
        else:
            raise InvalidInput(f"'{key}[{i}]' must be a string or an object with a string 'text'", param=key)
    return tuple(value), tuple(texts)


def use_activation(body: fields.JsonObject) -> bool:
    """vLLM's ``use_activation`` (older vLLM: ``activation``); absent: activated scores."""
    for key in ("use_activation", "activation"):
        value = fields.optional_bool(body, key)
        if value is not None:
            return value
    return True


def truncate_prompt_tokens(body: fields.JsonObject) -> int | None:
    """vLLM's ``truncate_prompt_tokens``: -1 (the model's maximum) or a positive count."""
    value = body.get("truncate_prompt_tokens")
    if value is None:
        return None
    if not fields.is_int(value) or value < -1 or value == 0:
        raise InvalidInput("'truncate_prompt_tokens' must be -1 (the model's maximum) or a positive integer",
                           param="truncate_prompt_tokens")
    return int(value)


def parse_weights(body: fields.JsonObject) -> tuple[float, float, float] | None:
    """``weights``: a bge_m3 model's [dense, sparse, colbert] weights of the combined score (numbers >= 0, some > 0)."""
    value = body.get("weights")
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 3 or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0 for w in value)
            or sum(value) <= 0):
        raise InvalidInput("'weights' must be three numbers >= 0 (dense, sparse, colbert), not all 0",
                           param="weights")
    return (float(value[0]), float(value[1]), float(value[2]))


def parse_rerank_request(body: fields.JsonObject, *, max_documents: int, dialect: Dialect = COHERE) -> CohereRerank:
    model = fields.required_str(body, "model")
    query = fields.required_str(body, "query")
    documents, texts = parse_documents(body.get("documents"), _rank_fields(body))
    fields.check_count(len(texts), max_documents, param="documents")
    top_n = fields.optional_int(body, "top_n", minimum=0 if dialect.top_n_zero_is_all else 1)
    max_tokens = fields.optional_int(body, "max_tokens_per_doc", minimum=1)
    cap = truncate_prompt_tokens(body)  # vLLM's truncation: one window per pair, the query cut
    options = RerankOptions(max_tokens_per_doc=max_tokens, truncate=cap is not None,
                            truncate_query=dialect.truncate_query or cap is not None, weights=parse_weights(body),
                            instruction=fields.optional_instruction(body))
    request = RerankRequest(model, query, texts, top_n=top_n or None, options=options, truncate_prompt_tokens=cap)
    returned = fields.optional_bool(body, "return_documents")
    return CohereRerank(request, documents, dialect.return_documents if returned is None else returned,
                        use_activation=use_activation(body))


def _document(doc: Document) -> dict[str, Any]:
    return {"text": doc} if isinstance(doc, str) else doc


def rerank_response(parsed: CohereRerank, ranking: Ranking, response_id: str) -> dict[str, Any]:
    results = []
    scores = ranking.scores if parsed.use_activation else ranking.raw_scores
    for index in ranking.order:
        item: dict[str, Any] = {"index": index, "relevance_score": float(scores[index])}
        if parsed.return_documents:
            item["document"] = _document(parsed.documents[index])
        results.append(item)
    tokens = ranking.prompt_tokens
    return {
        "id": response_id,
        "model": ranking.info.name,
        "results": results,
        "meta": {"api_version": {"version": "2"}, "tokens": {"input_tokens": tokens, "output_tokens": 0}},
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
