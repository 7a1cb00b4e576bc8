"""Retrieval features on the HTTP routes, over the fake engine: prompts, compact output,
chunking, truncation direction, /v3/models metadata, Cohere /v2/embed with the cohere SDK."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed.prompts import PromptSet
from ovembed.serving.wire.compact import compact
from tests.serving.fakes import CLS, SEP, FakeRegistry, FakeServable, expected_vector, make_app, text_ids
from tests.support.sdk_transport import sdk_client

DIMS = 16
MAX_LEN = 8
E5 = PromptSet({"query": "query: ", "passage": "passage: "}, "query")


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(FakeServable("e5", dimensions=DIMS, max_length=MAX_LEN, prompts=E5),
                        FakeServable("plain", dimensions=DIMS, max_length=MAX_LEN, truncate=True))


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    with TestClient(make_app(registry, max_inputs=8)) as test_client:
        yield test_client


def vec(text: str) -> np.ndarray:
    return expected_vector(text_ids(text), DIMS, True)


def embed(client: TestClient, **body: Any) -> Any:
    resp = client.post("/v3/embeddings", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def error(client: TestClient, path: str = "/v3/embeddings", **body: Any) -> dict[str, Any]:
    resp = client.post(path, json=body)
    assert resp.status_code == 400, resp.text
    return resp.json()["error"]  # type: ignore[no-any-return]


def test_default_prompt_and_its_tokens_count(client: TestClient) -> None:
    body = embed(client, model="e5", input="hello world")
    np.testing.assert_allclose(body["data"][0]["embedding"], vec("query: hello world"), rtol=1e-6)
    assert body["usage"]["prompt_tokens"] == 5  # [CLS] query: hello world [SEP]


@pytest.mark.parametrize(("field", "value", "prefix"), [
    ("prompt_name", "passage", "passage: "), ("input_type", "document", "passage: "),
    ("input_type", "search_query", "query: "), ("prompt", "Instruct: find\nQuery: ", "Instruct: find\nQuery: "),
    ("prompt", "", ""),
])
def test_request_chooses_the_prompt(client: TestClient, field: str, value: str, prefix: str) -> None:
    body = embed(client, model="e5", input=["a b"], **{field: value})
    np.testing.assert_allclose(body["data"][0]["embedding"], vec(prefix + "a b"), rtol=1e-6)


def test_prompt_tokens_count_in_the_length_check(client: TestClient) -> None:
    six = "one two three four five six"  # 8 tokens alone, 9 with 'query:'
    assert embed(client, model="e5", input=six, prompt="")["usage"]["prompt_tokens"] == 8
    assert error(client, model="e5", input=six)["message"] == ("input[0] has 9 tokens; the model takes at most 8: "
                                                               "send truncate=true (or chunking) or shorten it")


def test_prompt_errors(client: TestClient) -> None:
    assert error(client, model="e5", input="x", prompt_name="nope")["param"] == "prompt_name"
    assert "at most one of" in error(client, model="e5", input="x", prompt="a", input_type="query")["message"]
    assert error(client, model="e5", input=[1, 2], prompt_name="query")["message"] == \
        "'prompt_name' applies to text inputs, not to token ids"
    assert error(client, model="e5", input="x", input_type="image")["param"] == "input_type"
    assert error(client, model="e5", input="x", prompt=3)["message"] == "'prompt' must be a string"


def test_token_ids_get_no_default_prompt(client: TestClient) -> None:
    body = embed(client, model="e5", input=[CLS, 5, SEP])
    np.testing.assert_allclose(body["data"][0]["embedding"], expected_vector([CLS, 5, SEP], DIMS, True), rtol=1e-6)


@pytest.mark.parametrize("fmt", ["int8", "uint8", "binary", "ubinary"])
def test_compact_encoding_formats(client: TestClient, fmt: str) -> None:
    body = embed(client, model="plain", input=["a", "b c"], encoding_format=fmt)
    expected = compact(np.stack([vec("a"), vec("b c")]), fmt)  # type: ignore[arg-type]
    assert [d["embedding"] for d in body["data"]] == expected.tolist()
    assert len(body["data"][0]["embedding"]) == (DIMS if "int" in fmt else DIMS // 8)


def test_compact_after_dimensions(client: TestClient) -> None:
    body = embed(client, model="plain", input="a", encoding_format="int8", dimensions=4)
    full = vec("a")[:4]
    assert body["data"][0]["embedding"] == compact(full[None, :] / np.linalg.norm(full), "int8")[0].tolist()


def test_truncation_direction(client: TestClient) -> None:
    words = " ".join(f"w{i}" for i in range(10))
    ids = text_ids(words)
    left = embed(client, model="plain", input=words, truncation_direction="left")
    right = embed(client, model="plain", input=words)
    np.testing.assert_allclose(left["data"][0]["embedding"],
                               expected_vector([CLS, *ids[-(MAX_LEN - 1):]], DIMS, True), rtol=1e-6)
    np.testing.assert_allclose(right["data"][0]["embedding"],
                               expected_vector([*ids[:MAX_LEN - 1], SEP], DIMS, True), rtol=1e-6)
    assert error(client, model="plain", input="x", truncation_direction="middle")["param"] == "truncation_direction"


def test_chunking_none_returns_every_chunk_with_offsets(client: TestClient) -> None:
    text = " ".join(f"w{i}" for i in range(18))  # 18 words, 6 per chunk (8 - [CLS] - [SEP])
    body = embed(client, model="plain", input=["short", text], chunking={"combine": "none"})
    data = body["data"]
    assert [(d["index"], d["chunk"]["index"]) for d in data] == [(0, 0), (1, 0), (1, 1), (1, 2)]
    pieces = [text[d["chunk"]["start"]:d["chunk"]["end"]] for d in data[1:]]
    assert pieces == [" ".join(f"w{i}" for i in range(s, s + 6)) for s in (0, 6, 12)]
    for d, piece in zip(data[1:], pieces, strict=True):  # each chunk embeds like the piece alone
        np.testing.assert_allclose(d["embedding"], vec(piece), rtol=1e-6)
    assert body["usage"]["prompt_tokens"] == 3 + 3 * 8


def test_chunking_mean_is_the_token_weighted_mean(client: TestClient) -> None:
    text = " ".join(f"w{i}" for i in range(8))  # chunks of 6 and 2 words: 8 and 4 tokens
    body = embed(client, model="plain", input=text, chunking={"size": 6})
    a, b = vec(" ".join(f"w{i}" for i in range(6))), vec("w6 w7")
    mean = (8 * a + 4 * b) / 12
    np.testing.assert_allclose(body["data"][0]["embedding"], mean / np.linalg.norm(mean), rtol=1e-5)
    assert len(body["data"]) == 1 and body["usage"]["prompt_tokens"] == 12


def test_chunking_with_a_prompt_repeats_it_in_every_chunk(client: TestClient) -> None:
    text = "a b c d e f g"  # room per chunk: 8 - 2 specials - 1 prompt token = 5 words
    data = embed(client, model="e5", input=text, chunking={"combine": "none"})["data"]
    assert [text[d["chunk"]["start"]:d["chunk"]["end"]] for d in data] == ["a b c d e", "f g"]
    np.testing.assert_allclose(data[1]["embedding"], vec("query: f g"), rtol=1e-6)


@pytest.mark.parametrize(("chunking", "message"), [
    ("yes", "'chunking' must be an object"),
    ({"size": 0}, "'size' must be at least 1"),
    ({"size": 4, "overlap": 4}, "'chunking.overlap' must be less than 'chunking.size' (4)"),
    ({"size": 7}, "'chunking.size' must be at most 6"),
    ({"combine": "max"}, "'combine' must be one of 'mean', 'none'"),
    ({"sise": 3}, "unknown fields: sise"),
])
def test_chunking_errors(client: TestClient, chunking: Any, message: str) -> None:
    assert message in error(client, model="plain", input="a b", chunking=chunking)["message"]


def test_models_metadata(client: TestClient) -> None:
    card = client.get("/v3/models/e5").json()
    assert card["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert card["default_prompt_name"] == "query"
    assert card["task"] == "embeddings" and card["dimensions"] == DIMS and card["max_length"] == MAX_LEN
    assert card["encoding_formats"] == ["float", "base64", "int8", "uint8", "binary", "ubinary"]
    listed = client.get("/v3/models").json()["data"]
    assert [m["prompts"] for m in listed] == [card["prompts"], {}]


def test_openai_sdk_extra_body(client: TestClient) -> None:
    openai = pytest.importorskip("openai")
    sdk = openai.OpenAI(base_url="http://testserver/v3", api_key="unused", http_client=client)
    resp = sdk.embeddings.create(model="e5", input=["a b"], encoding_format="float",
                                 extra_body={"prompt_name": "passage"})
    np.testing.assert_allclose(resp.data[0].embedding, vec("passage: a b"), rtol=1e-6)


def test_cohere_sdk_embed(client: TestClient) -> None:
    cohere = pytest.importorskip("cohere")
    co = cohere.ClientV2(api_key="unused", base_url="http://testserver", httpx_client=sdk_client(client))
    resp = co.embed(model="e5", texts=["a b", "c"], input_type="search_document",
                    embedding_types=["float", "int8", "ubinary", "base64"])
    expected = np.stack([vec("passage: a b"), vec("passage: c")])
    np.testing.assert_allclose(np.array(resp.embeddings.float_), expected, rtol=1e-6)
    assert resp.embeddings.int8 == compact(expected, "int8").tolist()
    assert resp.embeddings.ubinary == compact(expected, "ubinary").tolist()
    decoded = np.frombuffer(base64.b64decode(resp.embeddings.base64[1]), dtype="<f4")
    np.testing.assert_allclose(decoded, expected[1], rtol=1e-6)
    assert resp.texts == ["a b", "c"] and resp.meta.billed_units.input_tokens == 9
    query = co.embed(model="e5", texts=["a"], input_type="search_query", embedding_types=["float"])
    np.testing.assert_allclose(query.embeddings.float_[0], vec("query: a"), rtol=1e-6)


TOO_LONG_12 = "input[0] has 12 tokens; the model takes at most 8: send truncate=true (or chunking) or shorten it"


def test_cohere_truncate_and_errors(client: TestClient) -> None:
    words = " ".join(f"w{i}" for i in range(10))
    resp = client.post("/v2/embed", json={"model": "plain", "texts": [words], "truncate": "START"})
    np.testing.assert_allclose(resp.json()["embeddings"]["float"][0],
                               expected_vector([CLS, *text_ids(words)[-(MAX_LEN - 1):]], DIMS, True), rtol=1e-6)
    resp = client.post("/v2/embed", json={"model": "plain", "texts": [words], "truncate": "NONE"})
    assert resp.status_code == 400 and resp.json()["error"]["message"] == TOO_LONG_12
    assert error(client, "/v2/embed", model="plain", texts=[])["message"] == \
        "'texts' must be a non-empty list of strings"
    assert error(client, "/v2/embed", model="plain", texts=["a"], embedding_types=["int4"])["message"].startswith(
        "'embedding_types' must be one of 'float', 'int8'")
    assert error(client, "/v2/embed", model="plain", images=["data:"])["message"] == \
        "'images' is not supported: send 'texts'"
    missing = client.post("/v2/embed", json={"model": "nope", "texts": ["a"]})
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "The model 'nope' does not exist"
    cohere = pytest.importorskip("cohere")
    co = cohere.ClientV2(api_key="unused", base_url="http://testserver", httpx_client=sdk_client(client))
    with pytest.raises(cohere.errors.BadRequestError) as info:
        co.embed(model="plain", texts=[words], input_type="search_query", truncate="NONE")
    assert info.value.body["error"]["message"] == TOO_LONG_12
