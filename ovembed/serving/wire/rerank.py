"""Rerank in the Cohere shape (v1 and v2), which OVMS's ``/v3/rerank``, Jina and vLLM share.

Request: ``{"model", "query", "documents": [str | {"text": str, ...}], "top_n"?, "return_documents"?,
"max_tokens_per_doc"?, "rank_fields"?}``. Object documents are ranked on ``text``, or with
``rank_fields`` (Cohere v1) on ``"field: value"`` lines of those fields. Unknown fields (Cohere's
``priority``, ``relevant_spans``, ``max_chunks_per_doc``) are accepted and ignored.

Response: ``{"id", "model", "results": [{"index", "relevance_score", "document"?}], "meta": {...},
"usage": {"prompt_tokens", "total_tokens"}}``, best first: ``id``/``results``/``meta`` are Cohere's
(its SDK reads ``meta.tokens``), ``usage`` what OpenAI-style clients (Jina, vLLM) read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovembed.errors import InvalidInput
from ovembed.serving.api import RerankOptions
from ovembed.serving.usecases.rerank import Ranking, RerankRequest
from ovembed.serving.wire import fields

Document = str | dict[str, Any]


@dataclass(frozen=True)
class CohereRerank:
    request: RerankRequest
    documents: tuple[Document, ...]  # as sent, returned with return_documents
    return_documents: bool = False


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


def parse_rerank_request(body: fields.JsonObject, *, max_documents: int) -> CohereRerank:
    model = fields.required_str(body, "model")
    query = fields.required_str(body, "query")
    documents, texts = parse_documents(body.get("documents"), _rank_fields(body))
    fields.check_count(len(texts), max_documents, param="documents")
    top_n = fields.optional_int(body, "top_n", minimum=1)
    max_tokens = fields.optional_int(body, "max_tokens_per_doc", minimum=1)
    request = RerankRequest(model, query, texts, top_n=top_n, options=RerankOptions(max_tokens_per_doc=max_tokens))
    return CohereRerank(request, documents, bool(fields.optional_bool(body, "return_documents")))


def _document(doc: Document) -> dict[str, Any]:
    return {"text": doc} if isinstance(doc, str) else doc


def rerank_response(parsed: CohereRerank, ranking: Ranking, response_id: str) -> dict[str, Any]:
    results = []
    for index in ranking.order:
        item: dict[str, Any] = {"index": index, "relevance_score": float(ranking.scores[index])}
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
