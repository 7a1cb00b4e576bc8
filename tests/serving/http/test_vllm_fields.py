"""vLLM's extra fields on /v1/embeddings, its /tokenize and /detokenize, Cohere's meta.tokens and the
Matryoshka rule for ``dimensions``, over the fake engine (written from vLLM's documented API)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from tests.serving.fakes import CLS, SEP, FakeRegistry, FakeServable, expected_vector, fake_decode, make_app, text_ids

DIMS = 16
MAX_LEN = 8
TEXT = "one two three four five six seven eight nine"  # 11 tokens with [CLS] and [SEP]


@pytest.fixture
def client() -> Iterator[TestClient]:
    registry = FakeRegistry(
        FakeServable("norm", dimensions=DIMS, max_length=MAX_LEN, matryoshka=None),
        FakeServable("raw", dimensions=DIMS, max_length=MAX_LEN, normalize=False, matryoshka=()),
        FakeServable("mrl", dimensions=DIMS, max_length=MAX_LEN, matryoshka=(4, 8)),
        FakeServable("anydim", dimensions=DIMS, max_length=MAX_LEN, matryoshka=()),
    )
    with TestClient(make_app(registry)) as c:
        yield c


def _post(client: TestClient, body: dict[str, object], status: int = 200) -> dict[str, object]:
    resp = client.post("/v1/embeddings", json=body)
    assert resp.status_code == status, resp.text
    return resp.json()  # type: ignore[no-any-return]


def _error(client: TestClient, body: dict[str, object]) -> tuple[str, str]:
    error = _post(client, body, 400)["error"]
    return error["message"], error["param"]  # type: ignore[index]


# -- embed_dtype / endianness / bytes ------------------------------------------------------


@pytest.mark.parametrize(("dtype", "endianness", "numpy"), [
    ("float32", "little", "<f4"), ("float32", "big", ">f4"), ("float16", "little", "<f2"),
    ("float16", "big", ">f2"), ("float16", "native", "=f2"), ("bfloat16", "little", None),
])
def test_base64_follows_embed_dtype_and_endianness(client: TestClient, dtype: str, endianness: str,
                                                   numpy: str | None) -> None:
    body = _post(client, {"model": "norm", "input": "hello world", "encoding_format": "base64",
                          "embed_dtype": dtype, "endianness": endianness})
    raw = base64.b64decode(body["data"][0]["embedding"])  # type: ignore[index]
    want = expected_vector(text_ids("hello world"), DIMS, True)
    if numpy is not None:
        got = np.frombuffer(raw, dtype=numpy)
        np.testing.assert_array_equal(got, want.astype(numpy))
    else:  # bfloat16: the upper half of the float32 bits, rounded to nearest even
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        np.testing.assert_allclose(bits.view(np.float32), want, rtol=2**-8)
        assert len(raw) == 2 * DIMS


def test_float_output_ignores_embed_dtype_as_vllm_does(client: TestClient) -> None:
    body = _post(client, {"model": "norm", "input": "hi", "embed_dtype": "float16"})
    np.testing.assert_allclose(body["data"][0]["embedding"], expected_vector(text_ids("hi"), DIMS, True),  # type: ignore[index]
                               rtol=1e-6)


def test_bytes_and_bytes_only(client: TestClient) -> None:
    resp = client.post("/v1/embeddings", json={"model": "norm", "input": ["a b", "c"], "encoding_format": "bytes",
                                               "embed_dtype": "float16", "endianness": "big"})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/octet-stream"
    meta = orjson.loads(resp.headers["metadata"])
    assert meta["model"] == "norm" and meta["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    assert [(d["index"], d["start"], d["end"], d["shape"], d["embed_dtype"], d["endianness"]) for d in meta["data"]] \
        == [(0, 0, 32, [DIMS], "float16", "big"), (1, 32, 64, [DIMS], "float16", "big")]
    second = np.frombuffer(resp.content[32:64], dtype=">f2")
    np.testing.assert_array_equal(second, expected_vector(text_ids("c"), DIMS, True).astype(">f2"))
    only = client.post("/v1/embeddings", json={"model": "norm", "input": "c", "encoding_format": "bytes_only"})
    assert "metadata" not in only.headers
    assert np.frombuffer(only.content, "<f4").tolist() == expected_vector(text_ids("c"), DIMS, True).tolist()


@pytest.mark.parametrize(("extra", "message", "param"), [
    ({"embed_dtype": "float64"}, "'embed_dtype' must be one of 'float32', 'float16', 'bfloat16', got \"float64\"",
     "embed_dtype"),
    ({"embed_dtype": "fp8_e4m3"}, "'embed_dtype' fp8_e4m3 is not supported: use float32, float16 or bfloat16",
     "embed_dtype"),
    ({"endianness": "middle"}, "'endianness' must be one of 'native', 'big', 'little', got \"middle\"", "endianness"),
    ({"embed_dtype": "float16", "encoding_format": "int8"},
     "'embed_dtype' applies to encoding_format 'base64' and 'bytes', not 'int8'", "embed_dtype"),
    ({"encoding_format": "bytes", "chunking": {"combine": "none"}},
     "encoding_format 'bytes' has one row per input: use chunking 'mean', or 'float'", "encoding_format"),
])
def test_encoding_errors(client: TestClient, extra: dict[str, object], message: str, param: str) -> None:
    assert _error(client, {"model": "norm", "input": "hi", **extra}) == (message, param)


# -- normalize / use_activation -------------------------------------------------------------


@pytest.mark.parametrize("field", ["normalize", "use_activation"])
def test_normalize(client: TestClient, field: str) -> None:
    raw = np.array(_post(client, {"model": "raw", "input": "hi", field: False})["data"][0]["embedding"])  # type: ignore[index]
    np.testing.assert_allclose(raw, expected_vector(text_ids("hi"), DIMS, False), rtol=1e-6)
    unit = np.array(_post(client, {"model": "raw", "input": "hi", field: True})["data"][0]["embedding"])  # type: ignore[index]
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw), rtol=1e-5)
    assert _post(client, {"model": "norm", "input": "hi", field: True})["data"] is not None
    assert _error(client, {"model": "norm", "input": "hi", field: False}) == (
        "The model 'norm' normalises its vectors inside its graph (graph.pbtxt normalize_embeddings: true), so "
        "'normalize' false cannot be honoured: serve an export made with --skip_normalize for raw vectors",
        "normalize")
    assert _error(client, {"model": "raw", "input": "hi", "normalize": True, "use_activation": False}) == (
        "'normalize' and 'use_activation' disagree: send one of them", "normalize")


def test_dimensions_without_normalize_is_not_renormalised(client: TestClient) -> None:
    raw = _post(client, {"model": "raw", "input": "hi", "dimensions": 4})  # raw model: cut only
    got = np.array(raw["data"][0]["embedding"])  # type: ignore[index]
    np.testing.assert_allclose(got, expected_vector(text_ids("hi"), DIMS, False)[:4], rtol=1e-6)


# -- truncate_prompt_tokens / truncation_side / add_special_tokens ---------------------------


def test_truncate_prompt_tokens_keeps_the_last_tokens(client: TestClient) -> None:
    ids = text_ids(TEXT)
    body = _post(client, {"model": "norm", "input": TEXT, "truncate_prompt_tokens": 5})
    assert body["usage"]["prompt_tokens"] == 5  # type: ignore[index]
    want = [CLS, *ids[1:-1][-3:], SEP]
    np.testing.assert_allclose(body["data"][0]["embedding"], expected_vector(want, DIMS, True), rtol=1e-6)  # type: ignore[index]
    right = _post(client, {"model": "norm", "input": TEXT, "truncate_prompt_tokens": 5, "truncation_side": "right"})
    np.testing.assert_allclose(right["data"][0]["embedding"],  # type: ignore[index]
                               expected_vector([CLS, *ids[1:4], SEP], DIMS, True), rtol=1e-6)
    whole = _post(client, {"model": "norm", "input": TEXT, "truncate_prompt_tokens": -1})
    assert whole["usage"]["prompt_tokens"] == MAX_LEN  # type: ignore[index]
    tokens = _post(client, {"model": "norm", "input": list(range(1000, 1010)), "truncate_prompt_tokens": 3})
    np.testing.assert_allclose(tokens["data"][0]["embedding"],  # type: ignore[index]
                               expected_vector([1007, 1008, 1009], DIMS, True), rtol=1e-6)


@pytest.mark.parametrize(("extra", "message", "param"), [
    ({"truncate_prompt_tokens": 9}, "'truncate_prompt_tokens' (9) is greater than the model's maximum length (8): "
     "request a smaller truncation size", "truncate_prompt_tokens"),
    ({"truncate_prompt_tokens": 0}, "'truncate_prompt_tokens' must be -1 (the model's maximum) or a positive integer",
     "truncate_prompt_tokens"),
    ({"truncate_prompt_tokens": 4, "chunking": {}},
     "'truncate_prompt_tokens' does not combine with 'chunking' (chunks are cut to fit the model)",
     "truncate_prompt_tokens"),
    ({"truncation_side": "up"}, "'truncation_side' must be one of 'left', 'right', got \"up\"", "truncation_side"),
    ({"truncation_side": "left", "truncation_direction": "right"},
     "'truncation_side' and 'truncation_direction' disagree: send one of them", "truncation_side"),
    ({"add_special_tokens": "no"}, "'add_special_tokens' must be a boolean", "add_special_tokens"),
    ({"encoding_format": "sparse", "truncate_prompt_tokens": 4},
     "'truncate_prompt_tokens' does not apply to encoding_format 'sparse'", "truncate_prompt_tokens"),
])
def test_truncation_errors(client: TestClient, extra: dict[str, object], message: str, param: str) -> None:
    assert _error(client, {"model": "norm", "input": "hi", **extra}) == (message, param)


def test_add_special_tokens_false(client: TestClient) -> None:
    body = _post(client, {"model": "norm", "input": "hello world", "add_special_tokens": False})
    assert body["usage"]["prompt_tokens"] == 2  # type: ignore[index]
    np.testing.assert_allclose(body["data"][0]["embedding"],  # type: ignore[index]
                               expected_vector(text_ids("hello world")[1:-1], DIMS, True), rtol=1e-6)


def test_harmless_fields_are_accepted(client: TestClient) -> None:
    body = {"model": "norm", "input": "hi", "user": "u", "request_id": "r", "priority": 0, "cache_salt": "s"}
    assert _post(client, body)["data"][0]["embedding"] == _post(client, {"model": "norm", "input": "hi"})[  # type: ignore[index]
        "data"][0]["embedding"]  # type: ignore[index]


# -- dimensions follows the model -----------------------------------------------------------


def test_dimensions_follow_matryoshka(client: TestClient) -> None:
    assert _error(client, {"model": "norm", "input": "hi", "dimensions": 4}) == (
        "The model 'norm' was not trained for shorter vectors (no Matryoshka training recorded), so 'dimensions' 4 "
        "would return a worse vector: leave 'dimensions' out, or if it was trained for them list the sizes in its "
        "ovembed_model.json (matryoshka_dimensions) or serve with --allow_any_dimensions", "dimensions")
    assert len(_post(client, {"model": "norm", "input": "hi", "dimensions": DIMS})["data"][0]["embedding"]) == DIMS  # type: ignore[index]
    assert len(_post(client, {"model": "mrl", "input": "hi", "dimensions": 8})["data"][0]["embedding"]) == 8  # type: ignore[index]
    assert _error(client, {"model": "mrl", "input": "hi", "dimensions": 6}) == (
        "The model 'mrl' was trained for 'dimensions' 4, 8 only, got 6", "dimensions")
    assert len(_post(client, {"model": "anydim", "input": "hi", "dimensions": 6})["data"][0]["embedding"]) == 6  # type: ignore[index]
    cohere = client.post("/v2/embed", json={"model": "norm", "texts": ["hi"], "output_dimension": 4})
    assert cohere.status_code == 400 and cohere.json()["error"]["param"] == "dimensions"
    ollama = client.post("/api/embed", json={"model": "norm", "input": "hi", "dimensions": 4})
    assert ollama.status_code == 400 and "not trained for shorter vectors" in ollama.json()["error"]
    cards = {c["id"]: c for c in client.get("/v1/models").json()["data"]}
    assert cards["norm"]["matryoshka_dimensions"] is None and cards["mrl"]["matryoshka_dimensions"] == [4, 8]
    assert cards["anydim"]["matryoshka_dimensions"] == []


# -- Cohere meta.tokens, vLLM /tokenize and /detokenize ---------------------------------------


def test_cohere_embed_meta_tokens(client: TestClient) -> None:
    meta = client.post("/v2/embed", json={"model": "norm", "texts": ["a b", "c"]}).json()["meta"]
    assert meta["tokens"] == {"input_tokens": 7} and meta["billed_units"] == {"input_tokens": 7}


def test_vllm_tokenize_and_detokenize() -> None:
    with TestClient(make_app(FakeRegistry(FakeServable("only", max_length=MAX_LEN)))) as c:
        body = c.post("/tokenize", json={"prompt": "hello world"}).json()
        assert body == {"count": 4, "max_model_len": MAX_LEN, "tokens": text_ids("hello world")}
        plain = c.post("/tokenize", json={"model": "only", "prompt": "hello world", "add_special_tokens": False}).json()
        assert plain["tokens"] == text_ids("hello world")[1:-1] and plain["count"] == 2
        back = c.post("/detokenize", json={"tokens": body["tokens"]}).json()
        assert back == {"prompt": fake_decode(body["tokens"])}


@pytest.mark.parametrize(("path", "body", "message", "param"), [
    ("/tokenize", {"model": "norm"}, "Missing required field 'prompt'", "prompt"),
    ("/tokenize", {"model": "norm", "prompt": 3}, "'prompt' must be a string", "prompt"),
    ("/tokenize", {"model": "norm", "messages": [{"role": "user", "content": "x"}]},
     "'messages' (vLLM's chat tokenization) is not supported: send 'prompt'", "messages"),
    ("/tokenize", {"model": "norm", "prompt": "x", "return_token_strs": True},
     "'return_token_strs' is not supported: decode ids with /detokenize", "return_token_strs"),
    ("/tokenize", {"prompt": "x"}, "Several models are served (anydim, mrl, norm, raw): name one in 'model'", "model"),
    ("/detokenize", {"model": "norm"}, "Missing required field 'tokens'", "tokens"),
    ("/detokenize", {"model": "norm", "tokens": ["a"]}, "'tokens' must be a list of integer token ids", "tokens"),
    ("/detokenize", {"model": "norm", "tokens": [101, 30522]},
     "tokens[1] is 30522, outside the vocabulary (0..30521)", "tokens"),
])
def test_vllm_tokenize_errors(client: TestClient, path: str, body: dict[str, object], message: str,
                              param: str) -> None:
    resp = client.post(path, json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == {"message": message, "type": "invalid_request_error", "param": param, "code": None}


def test_cohere_max_tokens_cuts_on_truncates_side(client: TestClient) -> None:
    ids = text_ids(TEXT)
    end = client.post("/v2/embed", json={"model": "norm", "texts": [TEXT], "max_tokens": 4}).json()
    np.testing.assert_allclose(end["embeddings"]["float"][0], expected_vector([CLS, *ids[1:3], SEP], DIMS, True),
                               rtol=1e-6)
    assert end["meta"]["tokens"] == {"input_tokens": 4}
    start = client.post("/v2/embed", json={"model": "norm", "texts": [TEXT], "max_tokens": 4, "truncate": "START"})
    np.testing.assert_allclose(start.json()["embeddings"]["float"][0],
                               expected_vector([CLS, *ids[-3:-1], SEP], DIMS, True), rtol=1e-6)
    big = client.post("/v2/embed", json={"model": "norm", "texts": [TEXT], "max_tokens": 100}).json()
    assert big["meta"]["tokens"] == {"input_tokens": MAX_LEN}  # the model's limit is lower
    none = client.post("/v2/embed", json={"model": "norm", "texts": ["hi"], "max_tokens": 4, "truncate": "NONE"})
    assert none.status_code == 400 and none.json()["error"] == {
        "message": "'max_tokens' cuts inputs: send truncate START or END with it", "type": "invalid_request_error",
        "param": "max_tokens", "code": None}
