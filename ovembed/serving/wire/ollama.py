"""Ollama's embeddings API: ``/api/embed``, legacy ``/api/embeddings``, ``/api/tags``.

Shapes follow Ollama's server so its clients (and the tools built on them) work unchanged:
durations are nanoseconds, ``truncate`` defaults to true, ``options`` is accepted and ignored, an empty
``input`` answers with no embeddings (Ollama's "load" call: it loads an idle-unloaded model).
``keep_alive`` is parsed as Ollama parses it (:func:`parse_keep_alive`) and sets how long the model stays
loaded after the request (:meth:`ovembed.serving.api.Registry.keep_alive`).

Extensions on ``/api/embed`` (fields Ollama ignores): ``prompt_name``, ``input_type``,
``truncation_direction`` and ``chunking`` as on the OpenAI route (:mod:`ovembed.serving.wire.retrieval`;
not ``prompt``, which is the input text of Ollama's legacy ``/api/embeddings``). With
``chunking.combine: "none"`` the response has one embedding per chunk and ``chunks``:
``[{"index": input, "chunk": n, "start", "end"}]`` (character offsets into the input).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ovembed.errors import InvalidInput
from ovembed.serving.api import ChunkSpan, ModelInfo
from ovembed.serving.wire import fields
from ovembed.serving.wire.retrieval import RetrievalFields, parse_retrieval_fields

# Ollama's own message when truncation is off and an input does not fit.
CONTEXT_LENGTH_ERROR = "input length exceeds maximum context length"
_MODEL_REQUIRED = "model is required"


@dataclass(frozen=True)
class EmbedRequest:
    model: str
    input: tuple[str, ...]
    truncate: bool = True
    dimensions: int | None = None
    retrieval: RetrievalFields = RetrievalFields()
    keep_alive: float | None = None  # seconds (negative: forever); None: not sent


@dataclass(frozen=True)
class LegacyEmbeddingsRequest:
    model: str
    prompt: str
    keep_alive: float | None = None


# Go's time.ParseDuration units, in seconds.
_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def _go_duration(text: str) -> float | None:
    """Seconds of a Go duration string ("300ms", "1.5h", "2h45m", "-1m", "0"), or None if it is not one."""
    sign, rest = (-1.0, text[1:]) if text[:1] == "-" else (1.0, text[1:] if text[:1] == "+" else text)
    if rest == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(rest):
        match = _PART.match(rest, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total if rest else None


def parse_keep_alive(body: fields.JsonObject) -> float | None:
    """``keep_alive`` as Ollama reads it (api.Duration): a number of seconds or a Go duration string
    ("5m", "1h30m"); negative means forever (returned as -1.0), 0 unload after this request; None when
    absent. Anything else is a 400."""
    value = body.get("keep_alive")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInput(f"unsupported duration type: '{type(value).__name__}' (keep_alive is a number of "
                           "seconds or a duration such as \"5m\")", param="keep_alive")
    seconds = float(value) if not isinstance(value, str) else _go_duration(value.strip())
    if seconds is None or not math.isfinite(seconds):
        raise InvalidInput(f'time: invalid duration "{value}" (keep_alive is a number of seconds or a duration '
                           'such as "5m", "1h30m")', param="keep_alive")
    return -1.0 if seconds < 0 else seconds


def parse_embed_request(body: fields.JsonObject) -> EmbedRequest:
    model = fields.required_str(body, "model", message=_MODEL_REQUIRED)
    value = body.get("input")
    if value is None or value == "":
        texts: tuple[str, ...] = ()
    elif isinstance(value, str):
        texts = (value,)
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        texts = tuple(value)
    else:
        raise InvalidInput("invalid input type", param="input")
    truncate = fields.optional_bool(body, "truncate")
    return EmbedRequest(
        model=model,
        input=texts,
        truncate=True if truncate is None else truncate,
        # Ollama treats 0 as "not set".
        dimensions=fields.optional_int(body, "dimensions", minimum=0) or None,
        retrieval=parse_retrieval_fields(body, prompt_text=False),
        keep_alive=parse_keep_alive(body),
    )


def parse_legacy_request(body: fields.JsonObject) -> LegacyEmbeddingsRequest:
    model = fields.required_str(body, "model", message=_MODEL_REQUIRED)
    prompt = body.get("prompt")
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise InvalidInput("'prompt' must be a string", param="prompt")
    return LegacyEmbeddingsRequest(model=model, prompt=prompt, keep_alive=parse_keep_alive(body))


def embed_response(model: str, embeddings: np.ndarray, prompt_tokens: int,
                   total_ns: int, chunks: Sequence[ChunkSpan] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "embeddings": embeddings,  # [n, dims] float32, serialised by orjson
        "total_duration": total_ns,
        "load_duration": 0,  # an idle-unloaded model's load is not counted
        "prompt_eval_count": prompt_tokens,
    }
    if chunks is not None:
        seen: dict[int, int] = {}
        described = []
        for span in chunks:
            n = seen[span.input_index] = seen.get(span.input_index, -1) + 1
            described.append({"index": span.input_index, "chunk": n, "start": span.start, "end": span.end})
        body["chunks"] = described
    return body


def empty_embed_response(model: str) -> dict[str, Any]:
    return {"model": model, "embeddings": []}


def legacy_response(embedding: np.ndarray | None) -> dict[str, Any]:
    return {"embedding": [] if embedding is None else embedding}


def model_tag(info: ModelInfo) -> dict[str, Any]:
    modified = datetime.fromtimestamp(info.created, tz=timezone.utc)
    digest = hashlib.sha256(f"{info.name}\0{info.created}\0{info.precision}".encode()).hexdigest()
    return {
        "name": info.name,
        "model": info.name,
        "modified_at": modified.isoformat(),
        "size": 0,
        "digest": digest,
        "details": {
            "parent_model": "",
            "format": "openvino",
            "family": "",
            "families": None,
            "parameter_size": "",
            "quantization_level": info.precision.upper(),
        },
    }


def tags_response(infos: Iterable[ModelInfo]) -> dict[str, Any]:
    return {"models": [model_tag(info) for info in infos]}


def ps_response(infos: Iterable[ModelInfo]) -> dict[str, Any]:
    """``/api/ps``: the models loaded in memory now (idle-unloaded ones are not)."""
    return {"models": [{**model_tag(info), "size_vram": 0} for info in infos]}
