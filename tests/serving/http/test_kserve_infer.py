"""KServe v2 REST inference (ovembed/serving/wire/kserve_infer.py, routes/kserve.py ``infer``):
JSON and Triton's binary tensor data extension, over the fake registry."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from ovembed.errors import InvalidInput
from ovembed.serving.wire.kserve_infer import split_body, split_bytes_tensor
from tests.serving.fakes import FakeRegistry, FakeServable, expected_vector, make_app, text_ids

DIM = 384
TEXTS = ["hello world", "OpenVINO runs embedding models", "ünïcödé text 你好"]
KEY = "rest-secret"


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(FakeServable("minilm", dimensions=DIM), FakeServable("org/long", max_length=64),
                        loading=["slow"])


@pytest.fixture
def client(registry: FakeRegistry) -> Iterator[TestClient]:
    with TestClient(make_app(registry, max_inputs=4)) as test_client:
        yield test_client


def expected(texts: Sequence[str], dimensions: int = DIM) -> np.ndarray:
    return np.stack([expected_vector(text_ids(t), dimensions, True) for t in texts])


def json_request(texts: Sequence[Any], **extra: Any) -> dict[str, Any]:
    shape = extra.pop("shape", [len(texts)])
    return {"inputs": [{"name": "input", "shape": shape, "datatype": "BYTES", "data": list(texts)}], **extra}


def serialize(texts: Sequence[str | bytes]) -> bytes:
    parts = [t.encode() if isinstance(t, str) else t for t in texts]
    return b"".join(struct.pack("<I", len(p)) + p for p in parts)


def binary_request(texts: Sequence[str | bytes], header: dict[str, Any] | None = None) -> tuple[bytes, dict[str, str]]:
    """What tritonclient.http sends for InferInput.set_data_from_numpy(..., binary_data=True)."""
    raw = serialize(texts)
    body = header or {"inputs": [{"name": "input", "shape": [len(texts)], "datatype": "BYTES",
                                  "parameters": {"binary_data_size": len(raw)}}],
                      "parameters": {"binary_data_output": True}}
    head = orjson.dumps(body)
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def parse_binary_response(content: bytes, header_length: str) -> tuple[dict[str, Any], np.ndarray]:
    n = int(header_length)
    header = orjson.loads(content[:n])
    (output,) = header["outputs"]
    size = output["parameters"]["binary_data_size"]
    assert len(content) == n + size
    return header, np.frombuffer(content[n:], "<f4").reshape(output["shape"])


# --- JSON ----------------------------------------------------------------------------------

def test_json_infer(client: TestClient, registry: FakeRegistry) -> None:
    resp = client.post("/v2/models/minilm/infer", json=json_request(TEXTS, id="req-1"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in resp.headers
    assert resp.headers["x-inference-time"] == "4"
    body = resp.json()
    assert body["model_name"] == "minilm" and body["model_version"] == "1" and body["id"] == "req-1"
    (output,) = body["outputs"]
    assert {k: output[k] for k in ("name", "datatype", "shape")} == {
        "name": "embedding", "datatype": "FP32", "shape": [3, DIM]}
    got = np.array(output["data"], dtype=np.float32).reshape(output["shape"])
    np.testing.assert_array_equal(got, expected(TEXTS))  # float32 survives the JSON round trip exactly
    assert registry.servables["minilm"].calls == [(TEXTS, None)]


def test_json_infer_equals_openai_embeddings(client: TestClient) -> None:
    kserve = client.post("/v2/models/minilm/infer", json=json_request(TEXTS)).json()["outputs"][0]
    openai = client.post("/v3/embeddings", json={"model": "minilm", "input": TEXTS}).json()
    np.testing.assert_array_equal(np.array(kserve["data"], "f4").reshape(kserve["shape"]),
                                  np.array([d["embedding"] for d in openai["data"]], "f4"))


@pytest.mark.parametrize("path", ["org/long/infer", "org%2Flong/infer", "org/long/versions/1/infer"])
def test_slashed_names_and_versions(client: TestClient, path: str) -> None:
    resp = client.post(f"/v2/models/{path}", json=json_request(["a b"]))
    assert resp.status_code == 200, resp.text
    assert resp.json()["model_name"] == "org/long"
    assert resp.json()["outputs"][0]["shape"] == [1, 16]


def test_nested_data_with_shape_n_by_1_and_truncate(client: TestClient, registry: FakeRegistry) -> None:
    long = "one two three four five six seven eight nine"
    resp = client.post("/v2/models/minilm/infer",
                       json=json_request([[long], ["x"]], shape=[2, 1], parameters={"truncate": True}))
    assert resp.status_code == 200, resp.text
    got = np.array(resp.json()["outputs"][0]["data"], "f4").reshape(2, DIM)
    np.testing.assert_array_equal(got[0], expected_vector([*text_ids(long)[:7], 102], DIM, True))
    assert registry.servables["minilm"].calls == [([long, "x"], True)]
    resp = client.post("/v2/models/minilm/infer", json=json_request([long]))
    assert (resp.status_code, resp.json()) == (400, {"error": "input[0] has 11 tokens; the model takes at most 8: "
                                                              "send truncate=true (or chunking) or shorten it"})


# --- binary tensor data extension ----------------------------------------------------------

def test_binary_in_binary_out(client: TestClient) -> None:
    body, headers = binary_request(TEXTS)
    resp = client.post("/v2/models/minilm/infer", content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/octet-stream"
    header, got = parse_binary_response(resp.content, resp.headers["inference-header-content-length"])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 3 * DIM * 4}
    assert "data" not in header["outputs"][0]
    np.testing.assert_array_equal(got, expected(TEXTS))


@pytest.mark.parametrize(("request_wide", "per_output", "binary"), [
    (None, True, True), (True, None, True), (True, False, False), (False, True, True), (None, None, False)])
def test_output_format_choice(client: TestClient, request_wide: bool | None, per_output: bool | None,
                              binary: bool) -> None:
    body: dict[str, Any] = json_request(TEXTS[:1])
    if request_wide is not None:
        body["parameters"] = {"binary_data_output": request_wide}
    if per_output is not None:
        body["outputs"] = [{"name": "embedding", "parameters": {"binary_data": per_output}}]
    resp = client.post("/v2/models/minilm/infer", json=body)
    assert resp.status_code == 200, resp.text
    if binary:
        _, got = parse_binary_response(resp.content, resp.headers["inference-header-content-length"])
    else:
        assert "inference-header-content-length" not in resp.headers
        got = np.array(resp.json()["outputs"][0]["data"], "f4").reshape(1, DIM)
    np.testing.assert_array_equal(got, expected(TEXTS[:1]))


# --- errors --------------------------------------------------------------------------------

def _binary_header(size: int, **tensor: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES",
                        "parameters": {"binary_data_size": size}, **tensor}]}


BAD: list[tuple[str, Any, str]] = [
    ("not json", b"{", "Invalid JSON body"),
    ("no inputs", {}, "'inputs' must be a list of one tensor: the model takes one input 'input' (BYTES, shape [-1])"),
    ("two inputs", {"inputs": [json_request(["a"])["inputs"][0]] * 2}, "'inputs' must be a list of one tensor"),
    ("wrong name", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
     "Unknown input 'text'"),
    ("wrong type", {"inputs": [{"name": "input", "shape": [1], "datatype": "INT64", "data": [1]}]},
     "Input 'input' must have datatype BYTES, got 'INT64'"),
    ("shape mismatch", json_request(["a", "b"], shape=[3]), "Input 'input' has shape [3] but 2 elements"),
    ("bad shape", json_request(["a"], shape="1"), "'shape' must be a list of integers"),
    ("no data", {"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES"}]},
     "Input 'input' has neither 'data' nor parameters.binary_data_size"),
    ("number data", json_request([1]), "Input 'input': BYTES data must be strings"),
    ("empty text", json_request(["a", ""]), "'input[1]' must not be an empty string"),
    ("empty", json_request([]), "Input 'input' must not be empty"),
    ("unknown output", json_request(["a"], outputs=[{"name": "logits"}]),
     "Unknown output 'logits': the model's only output is 'embedding'"),
    ("truncate not bool", json_request(["a"], parameters={"truncate": "yes"}), "'truncate' must be a boolean"),
    ("id not string", json_request(["a"], id=5), "'id' must be a string"),
    ("both data and binary", _binary_header(0, data=["a"]),
     "Input 'input' has both 'data' and parameters.binary_data_size"),
]


@pytest.mark.parametrize(("body", "message"), [(b, m) for _, b, m in BAD], ids=[c for c, _, _ in BAD])
def test_bad_requests(client: TestClient, registry: FakeRegistry, body: Any, message: str) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = client.post("/v2/models/minilm/infer", content=content)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith(message)
    assert registry.servables["minilm"].calls == []


@pytest.mark.parametrize(("raw", "declared", "length", "message"), [
    (serialize(["abc"]), 9, None, "Input 'input' declares 9 bytes of binary data, the request carries 7"),
    (struct.pack("<I", 9) + b"abc", 7, None, "Malformed BYTES tensor: element longer than the data"),
    (b"\x01\x00", 2, None, "Malformed BYTES tensor: truncated element length"),
    (serialize([b"\xff"]), 5, None, "'input[0]' is not valid UTF-8"),
    (serialize(["abc"]), 7, "x", "Inference-Header-Content-Length must be an integer between 0 and the body size"),
    (serialize(["abc"]), 7, "100000", "Inference-Header-Content-Length must be an integer"),
])
def test_bad_binary_requests(client: TestClient, raw: bytes, declared: int, length: str | None,
                             message: str) -> None:
    head = orjson.dumps(_binary_header(declared))
    resp = client.post("/v2/models/minilm/infer", content=head + raw,
                       headers={"Inference-Header-Content-Length": length or str(len(head))})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith(message)


def test_binary_data_without_a_binary_input(client: TestClient) -> None:
    head = orjson.dumps(json_request(["a"]))
    resp = client.post("/v2/models/minilm/infer", content=head + b"extra",
                       headers={"Inference-Header-Content-Length": str(len(head))})
    assert (resp.status_code, resp.json()) == (400, {"error": "The request carries binary data no input declares"})


def test_model_errors(client: TestClient) -> None:
    cases = [("/v2/models/nope/infer", 404, "The model 'nope' does not exist"),
             ("/v2/models/slow/infer", 503, "The model 'slow' is still loading"),
             ("/v2/models/minilm/versions/2/infer", 404, "The model 'minilm/versions/2' does not exist"),
             ("/v2/models/minilm/ready/infer", 404, "The model 'minilm/ready' does not exist")]
    for path, status, message in cases:
        resp = client.post(path, json=json_request(["a"]))
        assert (resp.status_code, resp.json()) == (status, {"error": message}), path


def test_limits_and_encoding(client: TestClient) -> None:
    resp = client.post("/v2/models/minilm/infer", json=json_request(["a"] * 5))
    assert (resp.status_code, resp.json()) == (413, {"error": "Too many inputs: 5 in one request, the limit is 4"})
    resp = client.post("/v2/models/minilm/infer", content=b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
    assert resp.status_code == 415
    assert resp.json()["error"] == "Content-Encoding 'gzip' is not supported: send the body uncompressed"


def test_auth(registry: FakeRegistry) -> None:
    with TestClient(make_app(registry, environ={"API_KEY": KEY})) as client:
        resp = client.post("/v2/models/minilm/infer", json=json_request(["a"]))
        assert resp.status_code == 401
        resp = client.post("/v2/models/minilm/infer", json=json_request(["a"]),
                           headers={"Authorization": f"Bearer {KEY}"})
        assert resp.status_code == 200


# --- helpers -------------------------------------------------------------------------------

def test_split_bytes_tensor() -> None:
    assert split_bytes_tensor(b"") == []
    assert split_bytes_tensor(serialize(["", "ab", "ü"])) == [b"", b"ab", "ü".encode()]
    with pytest.raises(InvalidInput, match="truncated element length"):
        split_bytes_tensor(b"\x00\x00\x00")


def test_split_body() -> None:
    assert split_body(b"{}abc", None) == (b"{}abc", b"")
    assert split_body(b"{}abc", "2") == (b"{}", b"abc")
    assert split_body(b"{}", "2") == (b"{}", b"")
    for bad in ("-1", "3", " ", "2.0"):
        with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
            split_body(b"{}", bad)
