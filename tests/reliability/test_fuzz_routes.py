"""Property-based fuzzing of every POST route (hypothesis): whatever the body, the server answers
below 500, with JSON, and an error carries the envelope of the route's API family.

In process, over the fake registry (the routes, wire formats, use cases and middleware are the
real ones; only the model is fake), so a few hundred examples per route take seconds (about 20 s
for all routes: marked ``slow``, so the full suite runs it and ``-m "not slow"`` keeps only the guard
that every POST route is fuzzed). Bodies are drawn three ways: the route's own fields holding
arbitrary JSON values (the common case: a client that gets a type or a range wrong), arbitrary JSON
documents, and arbitrary bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from ovembed.serving.api import DEFAULT_RERANK, RerankOptions, RerankResult
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

pytestmark = pytest.mark.reliability

MODEL = "fake"
RERANKER = "fake-rerank"
CLASSIFIER = "fake-classify"

# Every POST route, with the fields its wire format reads and the family of its error envelope.
ROUTES: dict[str, tuple[tuple[str, ...], str]] = {
    "/v3/embeddings": (("model", "input", "encoding_format", "dimensions", "user", "truncate", "prompt",
                        "prompt_name", "input_type", "truncation_direction", "chunking"), "openai"),
    "/v1/embeddings": (("model", "input", "encoding_format", "dimensions", "embed_dtype", "endianness", "normalize",
                        "use_activation", "truncate_prompt_tokens", "truncation_side", "add_special_tokens"),
                       "openai"),
    "/v1/rerank": (("model", "query", "documents", "top_n", "return_documents", "use_activation", "activation",
                    "truncate_prompt_tokens"), "openai"),
    "/score": (("model", "text_1", "text_2", "queries", "documents", "items", "use_activation",
                "truncate_prompt_tokens"), "openai"),
    "/v2/embed": (("model", "texts", "input_type", "embedding_types", "truncate", "output_dimension",
                   "inputs", "images"), "openai"),
    "/v3/rerank": (("model", "query", "documents", "top_n", "return_documents", "max_chunks_per_doc",
                    "rank_fields"), "openai"),
    "/v2/rerank": (("model", "query", "documents", "top_n", "return_documents"), "openai"),
    "/rerank": (("model", "query", "texts", "raw_scores", "return_text", "truncate",
                 "truncation_direction"), "tei"),
    "/v3/tokenize": (("model", "text", "max_length", "pad_to_max_length", "add_special_tokens",
                      "padding_side"), "openai"),
    "/tokenize": (("model", "prompt", "add_special_tokens", "messages", "return_token_strs"), "openai"),
    "/detokenize": (("model", "tokens"), "openai"),
    "/api/embed": (("model", "input", "truncate", "dimensions", "options", "keep_alive"), "ollama"),
    "/api/embeddings": (("model", "prompt", "options", "keep_alive"), "ollama"),
    f"/v2/models/{MODEL}/infer": (("id", "inputs", "outputs", "parameters"), "kserve"),
    f"/v2/models/{MODEL}/versions/1/infer": (("id", "inputs", "outputs", "parameters"), "kserve"),
    "/v1/config/reload": ((), "openai"),
    "/embed_sparse": (("model", "inputs", "truncate", "truncation_direction", "prompt_name", "top_k",
                       "threshold"), "tei"),
    "/embed_all": (("model", "inputs", "truncate", "truncation_direction", "prompt_name", "input_type"), "tei"),
    "/predict": (("model", "inputs", "raw_scores", "truncate", "truncation_direction"), "tei"),
    "/v1/classify": (("model", "input", "truncate_prompt_tokens", "use_activation", "activation"), "openai"),
}

_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=False) | st.text(max_size=40)
            | st.sampled_from([MODEL, "nope", "", "float", "base64", "left", "right", "BYTES", "input",
                               "embedding", "search_query", "bytes",
                               "bfloat16", "big", "\u0000\n\u202e", "\udbff"[:0] + "\U0010ffff"]))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=6)
                     | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25)
# KServe's input tensor, nearly right, so parsing gets past the first checks
_tensor = st.fixed_dictionaries({"name": st.sampled_from(["input", "text", ""]) | _scalars,
                                 "datatype": st.sampled_from(["BYTES", "FP32", "bytes"]) | _scalars,
                                 "shape": st.lists(st.integers(-3, 2**40), max_size=3) | _json,
                                 "data": _json})


def _field_value(name: str) -> st.SearchStrategy[Any]:
    if name == "model":
        return st.sampled_from([MODEL, RERANKER, "nope", "", "fake/versions/1"]) | _json
    if name == "inputs":
        return st.lists(_tensor, max_size=2) | _json
    return _json


@st.composite
def _shaped(draw: st.DrawFn, names: tuple[str, ...]) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names))) if names else []
    body = {name: draw(_field_value(name)) for name in chosen}
    if names and draw(st.booleans()):
        body["model"] = MODEL
    return body


_TEXTS = st.lists(st.text(max_size=30), min_size=1, max_size=4)
_TENSOR = {"name": "input", "datatype": "BYTES", "shape": [2], "data": ["hello", "world"]}
# A valid body per route: the "mutated" strategy changes or drops a few of its fields, so the
# checks after the first ones (and the success path) are reached too.
VALID: dict[str, dict[str, Any]] = {
    "/v3/embeddings": {"model": MODEL, "input": ["hello", "world"], "encoding_format": "float"},
    "/v1/embeddings": {"model": MODEL, "input": "hello", "encoding_format": "base64", "embed_dtype": "float16"},
    "/v1/rerank": {"model": RERANKER, "query": "q", "documents": ["a", {"text": "b"}], "top_n": 0},
    "/score": {"model": RERANKER, "text_1": "q", "text_2": ["a", "b"], "use_activation": False},
    "/v2/embed": {"model": MODEL, "texts": ["hello"], "input_type": "search_query",
                  "embedding_types": ["float"]},
    "/v3/rerank": {"model": RERANKER, "query": "q", "documents": ["a", "b"]},
    "/v2/rerank": {"model": RERANKER, "query": "q", "documents": ["a", "b"], "top_n": 1},
    "/rerank": {"model": RERANKER, "query": "q", "texts": ["a", "b"]},
    "/v3/tokenize": {"model": MODEL, "text": ["hello", "world"], "max_length": 4, "pad_to_max_length": True},
    "/tokenize": {"model": MODEL, "prompt": "hello world"},
    "/detokenize": {"model": MODEL, "tokens": [101, 7592, 102]},
    "/api/embed": {"model": MODEL, "input": ["hello"]},
    "/api/embeddings": {"model": MODEL, "prompt": "hello"},
    f"/v2/models/{MODEL}/infer": {"inputs": [_TENSOR]},
    f"/v2/models/{MODEL}/versions/1/infer": {"inputs": [_TENSOR], "outputs": [{"name": "embedding"}]},
    "/v1/config/reload": {},
    "/embed_sparse": {"model": MODEL, "inputs": ["hello"], "top_k": 2},
    "/embed_all": {"model": MODEL, "inputs": ["hello"], "input_type": "query"},
    "/predict": {"model": CLASSIFIER, "inputs": [["hello"], ["a b", "c d"]], "raw_scores": True},
    "/v1/classify": {"model": CLASSIFIER, "input": ["hello", "world"]},
}


@st.composite
def _mutated(draw: st.DrawFn, path: str) -> dict[str, Any]:
    body = dict(VALID[path])
    names = sorted({*body, *ROUTES[path][0]})
    if not names:
        return body
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=3)):
        if draw(st.booleans()) and name in body:
            del body[name]
        else:
            body[name] = draw(_field_value(name) | _TEXTS)
    return body


def _bodies(path: str) -> st.SearchStrategy[bytes]:
    names = ROUTES[path][0]
    documents = _mutated(path) | _shaped(names) | _json
    # the stdlib writes what orjson refuses: integers beyond 64 bits, Infinity
    return (documents.map(lambda doc: json.dumps(doc, ensure_ascii=False).encode())
            | st.binary(max_size=200))


def _check_envelope(family: str, status: int, body: Any) -> None:
    if status < 400:
        return
    if family == "openai":
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}, body
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str)
    elif family == "tei":
        assert set(body) == {"error", "error_type"} and isinstance(body["error"], str), body
    else:  # ollama, kserve: {"error": "<message>"}
        assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body


class _FakeReranker(FakeServable):
    """A rerank model: a score per document (its length), so the rerank routes' success path runs."""

    def __init__(self, name: str) -> None:
        super().__init__(name, max_length=16, task="rerank")

    async def rerank(self, query: str, documents: Sequence[str],
                     options: RerankOptions = DEFAULT_RERANK) -> RerankResult:
        raw = np.array([float(len(d)) for d in documents], dtype=np.float32)
        return RerankResult(1 / (1 + np.exp(-raw)), raw, [len(d) for d in documents], [1] * len(documents))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    registry = FakeRegistry(FakeServable(MODEL, dimensions=8, max_length=16), _FakeReranker(RERANKER),
                            FakeServable(CLASSIFIER, max_length=16, task="classify"))
    with TestClient(make_app(registry, max_inputs=64, max_body_bytes=4096)) as test_client:
        yield test_client


@pytest.mark.slow  # 150 examples x 15 routes: ~20 s, the largest part of the unit suite otherwise
@pytest.mark.parametrize("path", list(ROUTES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_body_makes_a_route_fail_or_answer_outside_its_envelope(client: TestClient, path: str,
                                                                   data: st.DataObject) -> None:
    family = ROUTES[path][1]
    body = data.draw(_bodies(path), label="body")
    headers = {b"content-type": b"application/json"}
    if "/infer" in path and data.draw(st.booleans(), label="binary header"):
        headers[b"inference-header-content-length"] = data.draw(  # raw 0xB2 ("²".isdigit()) was a 500
            st.sampled_from([b"0", b"3", b"99999", b"-1", b"\xb2", "\u0663".encode(), b"1e3", b" 7"]),
            label="length")
    response = client.post(path, content=body, headers=headers)
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.headers.get("content-type", "").startswith("application/octet-stream"):
        return  # KServe binary output: JSON header + raw tensor bytes
    _check_envelope(family, response.status_code, response.json())


def test_every_post_route_is_fuzzed() -> None:
    """A new POST route fails this until it is in ROUTES (one of a handler's aliases is enough)."""
    from starlette.routing import Match, Route

    from ovembed.serving.http.app import all_routes

    posts = [r for r in all_routes() if isinstance(r, Route) and "POST" in (r.methods or ())]

    def handler(path: str) -> object:
        scope = {"type": "http", "path": path, "method": "POST"}
        return next(r.endpoint for r in posts if r.matches(scope)[0] is Match.FULL)

    fuzzed = {handler(path) for path in ROUTES}
    missing = sorted(r.path for r in posts if r.endpoint not in fuzzed)
    assert not missing, f"POST routes not fuzzed: {missing}"
