"""OpenAI routes (ovembed/serving/http/routes/openai.py, protocol/openai.py) over the fake engine."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator, MutableMapping
from typing import Any

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from ovembed.errors import InvalidInput
from ovembed.serving.api import ModelState
from tests.serving.fakes import (
    CREATED,
    FakeRegistry,
    FakeServable,
    expected_vector,
    make_app,
    seen_ids,
    text_ids,
)

DIMS = 16
MAX_LEN = 8


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(
        FakeServable("fake", dimensions=DIMS, max_length=MAX_LEN),
        FakeServable("org/raw", dimensions=DIMS, max_length=MAX_LEN, normalize=False),
        FakeServable("cutter", dimensions=DIMS, max_length=MAX_LEN, truncate=True),
        loading=["slow"],
        failed={"broken": "openvino_model.xml not found"},
    )


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    with TestClient(make_app(registry, max_inputs=5, max_body_bytes=4096)) as test_client:
        yield test_client


def vec(item: str | list[int], *, normalize: bool = True, truncate: bool = False) -> np.ndarray:
    return expected_vector(seen_ids(item, MAX_LEN, truncate), DIMS, normalize)


def post(client: TestClient, body: Any, path: str = "/v3/embeddings") -> Any:
    return client.post(path, json=body)


def assert_error(resp: Any, status: int, type_: str, param: str | None, message: str,
                 code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["type"] == type_
    assert error["param"] == param
    assert message in error["message"], error["message"]
    if code is not None:
        assert error["code"] == code
    assert "Traceback" not in resp.text


# ----- input forms -----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v3/embeddings", "/v1/embeddings", "/v3/v1/embeddings", "/v1-openai/embeddings"])
def test_single_string_on_every_alias(client: TestClient, path: str) -> None:
    resp = post(client, {"model": "fake", "input": "hello big world"}, path)
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list"
    assert body["model"] == "fake"
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert [d["index"] for d in body["data"]] == [0]
    assert body["data"][0]["object"] == "embedding"
    got = np.array(body["data"][0]["embedding"], dtype=np.float32)
    np.testing.assert_allclose(got, vec("hello big world"), rtol=1e-6)
    assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-5)


def test_list_of_strings_keeps_order_and_counts_tokens(client: TestClient) -> None:
    texts = ["one", "two words", "and three words"]
    body = post(client, {"model": "fake", "input": texts, "user": "u1", "whatever": 3}).json()
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    for text, item in zip(texts, body["data"], strict=True):
        np.testing.assert_allclose(item["embedding"], vec(text), rtol=1e-6)
    assert body["usage"]["prompt_tokens"] == 3 + 4 + 5


def test_token_ids_one_document(client: TestClient, registry: FakeRegistry) -> None:
    body = post(client, {"model": "fake", "input": [5, 6, 7]}).json()
    assert len(body["data"]) == 1
    np.testing.assert_allclose(body["data"][0]["embedding"], vec([5, 6, 7]), rtol=1e-6)
    assert body["usage"]["prompt_tokens"] == 3  # no special tokens added
    assert registry.servables["fake"].calls[-1] == ([(5, 6, 7)], None)


def test_token_ids_many_documents(client: TestClient) -> None:
    body = post(client, {"model": "fake", "input": [[1, 2], [3, 4, 5]]}).json()
    assert len(body["data"]) == 2
    np.testing.assert_allclose(body["data"][1]["embedding"], vec([3, 4, 5]), rtol=1e-6)
    assert body["usage"]["prompt_tokens"] == 5


def test_base64_round_trip(client: TestClient) -> None:
    texts = ["alpha beta", "gamma"]
    floats = post(client, {"model": "fake", "input": texts}).json()
    b64 = post(client, {"model": "fake", "input": texts, "encoding_format": "base64"}).json()
    for f, b in zip(floats["data"], b64["data"], strict=True):
        decoded = np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4")
        assert decoded.shape == (DIMS,)
        np.testing.assert_array_equal(decoded, np.array(f["embedding"], dtype=np.float32))


def test_explicit_float_and_null_fields_are_defaults(client: TestClient) -> None:
    body = post(client, {"model": "fake", "input": "x", "encoding_format": "float",
                         "dimensions": None, "truncate": None}).json()
    assert len(body["data"][0]["embedding"]) == DIMS


# ----- dimensions --------------------------------------------------------------------------

def test_dimensions_truncates_and_renormalises(client: TestClient) -> None:
    body = post(client, {"model": "fake", "input": "a b c", "dimensions": 4}).json()
    got = np.array(body["data"][0]["embedding"], dtype=np.float32)
    full = vec("a b c")
    assert got.shape == (4,)
    np.testing.assert_allclose(got, full[:4] / np.linalg.norm(full[:4]), rtol=1e-5)
    assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-5)


def test_dimensions_without_normalisation_keeps_values(client: TestClient) -> None:
    body = post(client, {"model": "org/raw", "input": "a b c", "dimensions": 4}).json()
    np.testing.assert_allclose(body["data"][0]["embedding"], vec("a b c", normalize=False)[:4],
                               rtol=1e-6)


def test_dimensions_full_size_and_base64(client: TestClient) -> None:
    full = post(client, {"model": "fake", "input": "q", "dimensions": DIMS}).json()
    np.testing.assert_allclose(full["data"][0]["embedding"], vec("q"), rtol=1e-6)
    b64 = post(client, {"model": "fake", "input": "q", "dimensions": 3,
                        "encoding_format": "base64"}).json()
    assert np.frombuffer(base64.b64decode(b64["data"][0]["embedding"]), "<f4").shape == (3,)


@pytest.mark.parametrize("dims", [0, -1])
def test_dimensions_not_positive(client: TestClient, dims: int) -> None:
    resp = post(client, {"model": "fake", "input": "x", "dimensions": dims})
    assert_error(resp, 400, "invalid_request_error", "dimensions",
                 "'dimensions' must be at least 1")


def test_dimensions_over_model_size(client: TestClient) -> None:
    resp = post(client, {"model": "fake", "input": "x", "dimensions": DIMS + 1})
    assert_error(resp, 400, "invalid_request_error", "dimensions",
                 f"'dimensions' must be at most {DIMS} for model 'fake', got {DIMS + 1}")


@pytest.mark.parametrize("dims", ["4", 4.5, True])
def test_dimensions_wrong_type(client: TestClient, dims: Any) -> None:
    resp = post(client, {"model": "fake", "input": "x", "dimensions": dims})
    assert_error(resp, 400, "invalid_request_error", "dimensions",
                 "'dimensions' must be an integer")


# ----- truncation --------------------------------------------------------------------------

LONG = "w " * 10  # 10 words -> 12 tokens > MAX_LEN


def test_too_long_without_truncation(client: TestClient) -> None:
    resp = post(client, {"model": "fake", "input": ["ok", LONG]})
    assert_error(resp, 400, "invalid_request_error", "input",
                 f"input[1] has 12 tokens; the model takes at most {MAX_LEN}: send truncate=true (or chunking) "
                 "or shorten it", code="input_too_long")


def test_truncate_true_cuts_to_the_maximum(client: TestClient, registry: FakeRegistry) -> None:
    body = post(client, {"model": "fake", "input": LONG, "truncate": True}).json()
    assert body["usage"]["prompt_tokens"] == MAX_LEN
    np.testing.assert_allclose(body["data"][0]["embedding"], vec(LONG, truncate=True), rtol=1e-6)
    assert registry.servables["fake"].calls[-1][1] is True


def test_truncate_default_comes_from_the_model(client: TestClient, registry: FakeRegistry) -> None:
    body = post(client, {"model": "cutter", "input": LONG}).json()
    assert body["usage"]["prompt_tokens"] == MAX_LEN
    assert registry.servables["cutter"].calls[-1][1] is None
    resp = post(client, {"model": "cutter", "input": LONG, "truncate": False})
    assert_error(resp, 400, "invalid_request_error", "input", "the model takes at most")


def test_truncate_wrong_type(client: TestClient) -> None:
    resp = post(client, {"model": "fake", "input": "x", "truncate": "yes"})
    assert_error(resp, 400, "invalid_request_error", "truncate", "'truncate' must be a boolean")


# ----- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "message"), [
    ("", "'input' must not be an empty string"),
    ([], "'input' must not be an empty list"),
    (["a", ""], "'input[1]' must not be an empty string"),
    (["a", 1], "mixed lists are not allowed"),
    ([1, "a"], "mixed lists are not allowed"),
    ([[1], 2], "mixed lists are not allowed"),
    ([[1], []], "'input[1]' must not be an empty list"),
    ([[1], ["a"]], "mixed lists are not allowed"),
    ([1, 2.5], "mixed lists are not allowed"),
    ([True], "'input' must be a string, a list of strings"),
    ([1, -2], "negative token id (-2)"),
    ([[1], [-3]], "'input[1]' contains a negative token id (-3)"),
    (42, "'input' must be a string, a list of strings, a list of token ids or a list of lists"),
    ({"text": "a"}, "'input' must be a string"),
    ([None], "'input' must be a string"),
    (None, "Missing required field 'input'"),
])
def test_invalid_input(client: TestClient, value: Any, message: str) -> None:
    resp = post(client, {"model": "fake", "input": value})
    assert_error(resp, 400, "invalid_request_error", "input", message)


def test_missing_input_field(client: TestClient) -> None:
    assert_error(post(client, {"model": "fake"}), 400, "invalid_request_error", "input",
                 "Missing required field 'input'")


def test_token_id_out_of_vocabulary_is_400(client: TestClient) -> None:
    resp = post(client, {"model": "fake", "input": [1, 99999]})
    assert_error(resp, 400, "invalid_request_error", "input",
                 "input[0] has token id 99999 outside the vocabulary (0..30521)")


@pytest.mark.parametrize("fmt", ["int4", "", 1, None])
def test_encoding_format(client: TestClient, fmt: Any) -> None:
    resp = post(client, {"model": "fake", "input": "x", "encoding_format": fmt})
    if fmt is None:
        assert resp.status_code == 200
    else:
        assert_error(resp, 400, "invalid_request_error", "encoding_format",
                     "'encoding_format' must be one of 'float', 'base64'")


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "Invalid JSON body"),
    (b"", "Invalid JSON body: the request body is empty"),
    (b"[1, 2]", "Invalid JSON body: expected a JSON object"),
    (b'"text"', "Invalid JSON body: expected a JSON object"),
])
def test_malformed_json(client: TestClient, body: bytes, message: str) -> None:
    resp = client.post("/v3/embeddings", content=body,
                       headers={"content-type": "application/json"})
    assert_error(resp, 400, "invalid_request_error", None, message)


def test_model_missing_or_wrong_type(client: TestClient) -> None:
    assert_error(post(client, {"input": "x"}), 400, "invalid_request_error", "model",
                 "Missing required field 'model'")
    assert_error(post(client, {"model": 3, "input": "x"}), 400, "invalid_request_error",
                 "model", "'model' must be a string")
    assert_error(post(client, {"model": "", "input": "x"}), 400, "invalid_request_error",
                 "model", "'model' must not be empty")


def test_unknown_model_is_404(client: TestClient) -> None:
    assert_error(post(client, {"model": "nope", "input": "x"}), 404, "invalid_request_error",
                 "model", "The model 'nope' does not exist", code="model_not_found")


@pytest.mark.parametrize(("name", "message"), [("slow", "is still loading"), ("broken", "not available")])
def test_model_not_ready_is_503(client: TestClient, name: str, message: str) -> None:
    assert_error(post(client, {"model": name, "input": "x"}), 503, "service_unavailable", None,
                 message, code="model_not_ready")


def test_overloaded_is_429(client: TestClient, registry: FakeRegistry) -> None:
    registry.servables["fake"].overloaded = True
    assert_error(post(client, {"model": "fake", "input": "x"}), 429, "rate_limit_error", None,
                 "queue is full", code="overloaded")


def test_too_many_inputs_is_413(client: TestClient) -> None:
    resp = post(client, {"model": "fake", "input": ["x"] * 6})
    assert_error(resp, 413, "invalid_request_error", "input",
                 "Too many inputs: 6 in one request, the limit is 5", code="payload_too_large")
    assert post(client, {"model": "fake", "input": ["x"] * 5}).status_code == 200


def test_body_too_large_is_413(client: TestClient) -> None:
    resp = post(client, {"model": "fake", "input": "word " * 1000})
    assert_error(resp, 413, "invalid_request_error", None,
                 "Request body is larger than the limit of 4096 bytes")


def test_body_too_large_without_content_length(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "fake", "input": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    resp = client.post("/v3/embeddings", content=chunks())
    assert_error(resp, 413, "invalid_request_error", None, "larger than the limit")


def test_internal_error_is_generic_500_with_request_id(
        client: TestClient, registry: FakeRegistry, caplog: pytest.LogCaptureFixture) -> None:
    registry.servables["fake"].fail_with = RuntimeError("secret internal detail")
    resp = post(client, {"model": "fake", "input": "x"})
    rid = resp.headers["x-request-id"]
    assert_error(resp, 500, "internal_error", None, f"Internal server error (request id {rid})")
    assert "secret" not in resp.text
    logged = [r for r in caplog.records if r.levelname == "ERROR" and rid in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "secret internal detail" in str(logged[0].exc_info[1])


def test_unknown_route_and_method_use_the_envelope(client: TestClient) -> None:
    assert_error(client.get("/v3/nothing"), 404, "invalid_request_error", None, "Not Found",
                 code="not_found")
    resp = client.get("/v3/embeddings")
    assert_error(resp, 405, "invalid_request_error", None, "Method Not Allowed",
                 code="method_not_allowed")
    assert "POST" in resp.headers["allow"]


# ----- headers -----------------------------------------------------------------------------

def test_timing_and_request_id_headers(client: TestClient) -> None:
    resp = post(client, {"model": "fake", "input": "x"})
    assert resp.headers["x-tokenization-time"] == "2"
    assert resp.headers["x-queue-time"] == "3"
    assert resp.headers["x-inference-time"] == "4"
    assert float(resp.headers["x-total-time"]) > 0  # fractional milliseconds
    assert len(resp.headers["x-request-id"]) == 32
    assert resp.headers["content-type"] == "application/json"


def test_incoming_request_id_is_kept_unless_unsafe(client: TestClient) -> None:
    resp = client.post("/v3/embeddings", json={"model": "fake", "input": "x"},
                       headers={"x-request-id": "trace-123"})
    assert resp.headers["x-request-id"] == "trace-123"
    resp = client.post("/v3/embeddings", json={"model": "fake", "input": "x"},
                       headers={"x-request-id": "bad id\twith spaces"})
    assert resp.headers["x-request-id"] != "bad id\twith spaces"
    assert len(resp.headers["x-request-id"]) == 32


# ----- models ------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["/v3", "/v1", "/v3/v1", "/v1-openai"])
def test_models_list_has_available_models(client: TestClient, prefix: str) -> None:
    body = client.get(f"{prefix}/models").json()
    assert body["object"] == "list"
    assert [_openai_fields(m) for m in body["data"][:3]] == [
        {"id": name, "object": "model", "created": CREATED, "owned_by": "ovembed", "task": "embeddings"}
        for name in ("fake", "org/raw", "cutter")
    ]
    # then the configured models that cannot serve, with their state and why (a pull in progress shows here)
    assert body["data"][3:] == [
        {"id": "slow", "object": "model", "created": 0, "owned_by": "ovembed", "state": "LOADING", "reason": "loading"},
        {"id": "broken", "object": "model", "created": 0, "owned_by": "ovembed", "state": "UNAVAILABLE",
         "reason": "openvino_model.xml not found"}]


def _openai_fields(card: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's own model fields (the rest is ovembed's metadata, tested in test_retrieval_routes)."""
    return {k: card[k] for k in ("id", "object", "created", "owned_by", "task")}


@pytest.mark.parametrize("path", ["/v3/models/org/raw", "/v3/models/org%2Fraw", "/v1/models/org%2Fraw",
                                  "/v3/v1/models/org/raw", "/v1-openai/models/org/raw"])
def test_model_by_id_with_slash(client: TestClient, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 200
    assert _openai_fields(resp.json()) == {"id": "org/raw", "object": "model", "created": CREATED,
                                           "owned_by": "ovembed", "task": "embeddings"}


def test_model_by_id_errors(client: TestClient) -> None:
    assert_error(client.get("/v3/models/nope"), 404, "invalid_request_error", "model",
                 "The model 'nope' does not exist")
    assert_error(client.get("/v3/models/slow"), 503, "service_unavailable", None, "loading")


def test_embeddings_with_slash_name(client: TestClient) -> None:
    body = post(client, {"model": "org/raw", "input": "x"}).json()
    assert body["model"] == "org/raw"


def test_state_change_is_seen(client: TestClient, registry: FakeRegistry) -> None:
    registry.set_state("fake", ModelState.UNAVAILABLE, "unloaded")
    assert post(client, {"model": "fake", "input": "x"}).status_code == 503


# ----- client disconnect --------------------------------------------------------------------

def test_client_disconnect_cancels_the_work() -> None:
    servable = FakeServable("fake")
    app = make_app(FakeRegistry(servable))
    sent: list[MutableMapping[str, Any]] = []

    async def scenario() -> None:
        servable.block = asyncio.Event()
        servable.started = asyncio.Event()
        disconnected = asyncio.Event()
        messages = [{"type": "http.request",
                     "body": orjson.dumps({"model": "fake", "input": "x"}), "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope: dict[str, Any] = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/v3/embeddings", "raw_path": b"",
                 "query_string": b"", "root_path": "", "headers": [], "client": None,
                 "server": None}
        async with app.router.lifespan_context(app):
            call = asyncio.ensure_future(app(scope, receive, send))
            await asyncio.wait_for(servable.started.wait(), 5)
            disconnected.set()
            await asyncio.wait_for(call, 5)

    asyncio.run(scenario())
    assert servable.cancelled
    assert sent[0]["status"] == 499


def test_client_disconnect_cancels_the_work_under_uvicorn() -> None:
    """The same through a real uvicorn server and a socket closed mid-request."""
    import socket

    import uvicorn

    servable = FakeServable("fake")

    async def scenario() -> None:
        servable.block = asyncio.Event()
        servable.started = asyncio.Event()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(make_app(FakeRegistry(servable)), host="127.0.0.1",
                                               port=port, log_config=None, access_log=False))
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        body = orjson.dumps({"model": "fake", "input": "x"})
        writer.write(b"POST /v3/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        await writer.drain()
        await asyncio.wait_for(servable.started.wait(), 5)
        writer.close()
        for _ in range(100):
            if servable.cancelled:
                break
            await asyncio.sleep(0.02)
        server.should_exit = True
        await serving

    asyncio.run(scenario())
    assert servable.cancelled


def test_input_parser_rejects_bool_token_lists() -> None:
    from ovembed.serving.wire.openai import parse_input

    with pytest.raises(InvalidInput):
        parse_input([[True, False]])
    assert parse_input([[1, 2]]) == ((1, 2),)
    assert parse_input("a") == ("a",)
    assert text_ids("a b")[0] == 101
