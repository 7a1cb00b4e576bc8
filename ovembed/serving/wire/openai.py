"""OpenAI embeddings and models: request parsing and response shaping.

``POST /v3/embeddings`` accepts what the OpenAI API accepts: a string, a non-empty list of
strings, a list of token ids (one document) or a list of non-empty lists of token ids.
Unknown fields (and ``user``) are ignored. Extensions: ``truncate``, the retrieval fields of
:mod:`ovembed.serving.wire.retrieval` (prompts, truncation direction, chunking), the compact
``encoding_format`` values of :mod:`ovembed.serving.wire.compact`, ``"sparse"`` with ``top_k`` /
``threshold`` for sparse models (:mod:`ovembed.serving.wire.sparse`), and vLLM's fields
(:mod:`ovembed.serving.wire.vllm_fields`) with its ``"bytes"`` and ``"bytes_only"`` formats: the body
is the vectors' bytes, row after row, and (``"bytes"``) a ``metadata`` header holds the JSON
``{"id", "created", "model", "data": [{"index", "embed_dtype", "endianness", "start", "end", "shape"}],
"usage"}``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeAlias

import numpy as np

from ovembed.config import Task
from ovembed.errors import InvalidInput
from ovembed.serving.api import COMBINE_MODES, DEFAULT_SPARSE, ChunkSpan, ModelInfo, ModelStatus, SparseOptions
from ovembed.serving.wire import fields
from ovembed.serving.wire.compact import COMPACT_TYPES, compact
from ovembed.serving.wire.retrieval import RetrievalFields, parse_retrieval_fields
from ovembed.serving.wire.sparse import parse_pruning
from ovembed.serving.wire.vectors import to_base64, to_bytes
from ovembed.serving.wire.vllm_fields import DEFAULT_VLLM, VllmFields, parse_vllm_fields

EncodingFormat = Literal["float", "base64", "int8", "uint8", "binary", "ubinary", "sparse", "bytes", "bytes_only"]
BYTES_FORMATS: tuple[EncodingFormat, ...] = ("bytes", "bytes_only")  # vLLM's binary responses
DENSE_FORMATS: tuple[EncodingFormat, ...] = ("float", "base64", *COMPACT_TYPES, *BYTES_FORMATS)
ENCODING_FORMATS: tuple[EncodingFormat, ...] = (*DENSE_FORMATS, "sparse")  # sparse: for sparse models

TextInputs: TypeAlias = tuple[str, ...]
TokenInputs: TypeAlias = tuple[tuple[int, ...], ...]

_INPUT_TYPES = (
    "'input' must be a string, a list of strings, a list of token ids "
    "or a list of lists of token ids"
)


@dataclass(frozen=True)
class EmbeddingsRequest:
    model: str
    input: TextInputs | TokenInputs
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = None
    truncate: bool | None = None  # None: the model's default
    retrieval: RetrievalFields = RetrievalFields()
    pruning: SparseOptions = DEFAULT_SPARSE  # encoding_format "sparse" only
    vllm: VllmFields = DEFAULT_VLLM


def parse_embeddings_request(body: fields.JsonObject, *, max_inputs: int) -> EmbeddingsRequest:
    model = fields.required_str(body, "model")
    inputs = parse_input(body.get("input"))
    fields.check_count(len(inputs), max_inputs)
    encoding = fields.optional_choice(body, "encoding_format", ENCODING_FORMATS)
    dimensions = fields.optional_int(body, "dimensions", minimum=1)
    pruning = parse_pruning(body)
    if encoding == "sparse" and dimensions is not None:
        raise InvalidInput("'dimensions' does not apply to encoding_format 'sparse' (use 'top_k')", param="dimensions")
    if encoding != "sparse" and pruning is not DEFAULT_SPARSE:
        raise InvalidInput("'top_k' and 'threshold' apply to encoding_format 'sparse' only",
                           param="top_k" if pruning.top_k is not None else "threshold")
    vllm = parse_vllm_fields(body)
    if encoding in (*COMPACT_TYPES, "sparse") and not vllm.default_encoding:
        name = "embed_dtype" if vllm.embed_dtype != "float32" else "endianness"
        raise InvalidInput(f"'{name}' applies to encoding_format 'base64' and 'bytes', not '{encoding}'", param=name)
    if encoding == "sparse" and vllm.changes_embedding is not None:
        raise InvalidInput(f"'{vllm.changes_embedding}' does not apply to encoding_format 'sparse'",
                           param=vllm.changes_embedding)
    retrieval = parse_retrieval_fields(body)
    direction = body.get("truncation_direction")
    if vllm.truncation_side is not None:
        if direction is not None and direction != vllm.truncation_side:
            raise InvalidInput("'truncation_side' and 'truncation_direction' disagree: send one of them",
                               param="truncation_side")
        retrieval = replace(retrieval, truncation_direction=vllm.truncation_side)
    elif vllm.truncate_prompt_tokens is not None and direction is None:
        retrieval = replace(retrieval, truncation_direction="left")  # vLLM keeps the last N tokens
    return EmbeddingsRequest(
        model=model,
        input=inputs,
        encoding_format=encoding or "float",
        dimensions=dimensions,
        truncate=fields.optional_bool(body, "truncate"),
        retrieval=retrieval,
        pruning=pruning,
        vllm=vllm,
    )


def parse_input(value: object) -> TextInputs | TokenInputs:
    """The ``input`` field in one of its four forms; anything else is a 400 on ``input``."""
    if value is None:
        raise InvalidInput("Missing required field 'input'", param="input")
    if isinstance(value, str):
        if not value:
            raise InvalidInput("'input' must not be an empty string", param="input")
        return (value,)
    if not isinstance(value, list):
        raise InvalidInput(_INPUT_TYPES, param="input")
    if not value:
        raise InvalidInput("'input' must not be an empty list", param="input")
    first = value[0]
    if isinstance(first, str):
        return _texts(value)
    if fields.is_int(first):
        return (_token_ids(value, "input"),)
    if isinstance(first, list):
        return tuple(_token_document(item, i) for i, item in enumerate(value))
    raise InvalidInput(_INPUT_TYPES, param="input")


def _mixed() -> InvalidInput:
    return InvalidInput(f"{_INPUT_TYPES}; mixed lists are not allowed", param="input")


def _texts(items: list[Any]) -> TextInputs:
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _mixed()
        if not item:
            raise InvalidInput(f"'input[{i}]' must not be an empty string", param="input")
    return tuple(items)


def _token_ids(items: list[Any], where: str) -> tuple[int, ...]:
    for item in items:
        if not fields.is_int(item):
            raise _mixed()
        if item < 0:
            raise InvalidInput(f"'{where}' contains a negative token id ({item})", param="input")
    return tuple(items)


def _token_document(item: object, index: int) -> tuple[int, ...]:
    if not isinstance(item, list):
        raise _mixed()
    if not item:
        raise InvalidInput(f"'input[{index}]' must not be an empty list", param="input")
    return _token_ids(item, f"input[{index}]")


def embeddings_response(model: str, embeddings: np.ndarray, prompt_tokens: int,
                        encoding_format: EncodingFormat,
                        chunks: Sequence[ChunkSpan] | None = None, vllm: VllmFields = DEFAULT_VLLM) -> dict[str, Any]:
    """The response body; ``embeddings`` rows are in input order (C-contiguous float32).

    With ``chunks`` (chunking "none") there is one item per chunk: ``index`` is its input's,
    and ``chunk`` says which chunk it is and which characters of the input it covers.
    """
    if encoding_format == "base64":
        rows: Sequence[Any] = [to_base64(row, vllm.embed_dtype, vllm.endianness) for row in embeddings]
    elif encoding_format == "float":
        rows = embeddings  # orjson serialises numpy arrays directly
    else:
        rows = compact(embeddings, encoding_format)
    if chunks is None:
        data = [{"object": "embedding", "embedding": row, "index": i} for i, row in enumerate(rows)]
    else:
        data = []
        seen: dict[int, int] = {}
        for row, span in zip(rows, chunks, strict=True):
            n = seen[span.input_index] = seen.get(span.input_index, -1) + 1
            data.append({"object": "embedding", "embedding": row, "index": span.input_index,
                         "chunk": {"index": n, "start": span.start, "end": span.end}})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def embeddings_bytes(model: str, embeddings: np.ndarray, prompt_tokens: int, vllm: VllmFields,
                     response_id: str) -> tuple[bytes, dict[str, Any]]:
    """vLLM's ``bytes`` response: the rows' bytes back to back, and the metadata describing them."""
    body = to_bytes(embeddings, vllm.embed_dtype, vllm.endianness)
    size = len(body) // max(1, len(embeddings))
    data = [{"index": i, "embed_dtype": vllm.embed_dtype, "endianness": vllm.endianness, "start": i * size,
             "end": (i + 1) * size, "shape": [int(embeddings.shape[1])]} for i in range(len(embeddings))]
    usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
    return body, {"id": response_id, "created": int(time.time()), "model": model, "data": data, "usage": usage}


def model_card(info: ModelInfo) -> dict[str, Any]:
    """OpenAI's model card plus ``task`` (``"embeddings"``, ``"rerank"``, ``"sparse"``, ...) and what the model
    supports: prompts, dimensions, input limit, output encodings, chunking's combine modes, a classifier's labels
    (ovembed's extension fields)."""
    card = {"id": info.name, "object": "model", "created": info.created, "owned_by": "ovembed", "task": info.task,
            "dimensions": info.dimensions, "max_length": info.max_length}
    if info.task is Task.EMBEDDINGS:
        card["matryoshka_dimensions"] = None if info.matryoshka is None else list(info.matryoshka)
        card.update(prompts=dict(info.prompts.prompts), default_prompt_name=info.prompts.default_name,
                    encoding_formats=list(DENSE_FORMATS), chunking=list(COMBINE_MODES))
    elif info.task is Task.SPARSE:  # dimensions: the vocabulary size (indices are token ids)
        pruning = info.pruning or DEFAULT_SPARSE
        card.update(prompts=dict(info.prompts.prompts), default_prompt_name=info.prompts.default_name,
                    encoding_formats=["sparse"],
                    pruning={"top_k": pruning.top_k, "threshold": pruning.threshold or 0.0})
    elif info.labels:  # a classifier: dimensions is the number of labels
        card["labels"] = list(info.labels)
    return card


def model_list(infos: Iterable[ModelInfo], unavailable: Iterable[tuple[str, ModelStatus]] = ()) -> dict[str, Any]:
    """Serving models' cards, then the configured models that cannot serve yet (loading, being pulled,
    failed) with their ``state`` and ``reason``, so a client sees a pulled model before it is ready."""
    data = [model_card(info) for info in infos]
    data += [{"id": name, "object": "model", "created": 0, "owned_by": "ovembed", "state": st.state.value,
              "reason": st.reason}
             for name, st in unavailable]
    return {"object": "list", "data": data}
