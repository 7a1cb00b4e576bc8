"""The stock ``tritonclient`` (gRPC and HTTP) against a live ``python -m ovembed serve --port``:
liveness, readiness, metadata and infer; vectors equal to what ``/v3/embeddings`` returns.

The server runs in its own process, so this process never imports ovembed's gRPC stubs next to
tritonclient's (both define ``inference.*`` protobuf messages).
"""

from __future__ import annotations

import importlib.util
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc", reason="pip install 'tritonclient[grpc,http]' (test extra)")
pytest.importorskip("tritonclient.http", reason="pip install 'tritonclient[grpc,http]' (test extra)")

import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.support.live_server import LiveServer, free_port, start_server, stop_server

KEY = "triton-secret"
MODEL = "minilm"
DIM = 384
TEXTS = [
    "hello world",
    "OpenVINO runs embedding models fast on CPUs.",
    "Ünïcödé survives the BYTES tensor: 你好, мир.",
    "A completely different sentence about cooking pasta with tomatoes and basil.",
]
ATOL = 1e-5

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("ovembed.serving.models.registry") is None,
                       reason="ovembed.serving.models.registry (the OpenVINO engine) does not exist yet"),
    pytest.mark.timeout(900),
]


@dataclass
class Servers:
    rest: LiveServer
    grpc_port: int


@pytest.fixture(scope="module")
def server(minilm_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    tmp = tmp_path_factory.mktemp("triton")
    key_file = tmp / "api_key"
    key_file.write_text(f"{KEY}\n")
    grpc_port = free_port()
    rest = start_server(minilm_repo, tmp / "server.log", "--port", str(grpc_port),
                        "--api_key_file", str(key_file))
    yield Servers(rest, grpc_port)
    assert stop_server(rest) in (0, -signal.SIGTERM), rest.log_text()
    assert "KServe gRPC stopped" in rest.log_text()


@pytest.fixture(scope="module")
def openai_vectors(server: Servers) -> np.ndarray:
    """The same texts through ``/v3/embeddings`` (float JSON)."""
    resp = httpx.post(f"{server.rest.base_url}/v3/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": MODEL, "input": TEXTS, "encoding_format": "float"}, timeout=60)
    assert resp.status_code == 200, resp.text
    return np.array([d["embedding"] for d in resp.json()["data"]], dtype=np.float32)


def _texts() -> np.ndarray:
    return np.array([t.encode() for t in TEXTS], dtype=np.object_)


# --- gRPC ----------------------------------------------------------------------------------

@pytest.fixture
def grpc_client(server: Servers) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    yield client
    client.close()


def grpc_auth() -> dict[str, str]:
    return {"authorization": f"Bearer {KEY}"}  # gRPC metadata keys are lowercase


def test_grpc_health_and_metadata(grpc_client: grpcclient.InferenceServerClient) -> None:
    assert grpc_client.is_server_live()
    assert grpc_client.is_server_ready()
    assert grpc_client.is_model_ready(MODEL)
    assert grpc_client.is_model_ready(MODEL, model_version="1")
    assert grpc_client.is_model_ready("nope") is False  # Triton's answer, not an exception
    assert grpc_client.is_model_ready(MODEL, model_version="7") is False
    config = grpc_client.get_model_config(MODEL, headers=grpc_auth(), as_json=True)["config"]
    assert (config["name"], config["platform"], config["backend"]) == (MODEL, "OpenVINO", "openvino")
    assert config["input"] == [{"name": "input", "data_type": "TYPE_STRING", "dims": ["-1"]}]
    assert config["output"] == [{"name": "embedding", "data_type": "TYPE_FP32", "dims": ["-1", str(DIM)]}]
    typed = grpc_client.get_model_config(MODEL, headers=grpc_auth()).config  # tritonclient's own messages
    assert typed.max_batch_size == 0 and list(typed.output[0].dims) == [-1, DIM]
    with pytest.raises(InferenceServerException) as info:
        grpc_client.get_model_config("nope", headers=grpc_auth())
    assert info.value.status() == "StatusCode.NOT_FOUND"
    server_meta = grpc_client.get_server_metadata(headers=grpc_auth(), as_json=True)
    assert server_meta["name"] == "ovembed"
    meta = grpc_client.get_model_metadata(MODEL, headers=grpc_auth(), as_json=True)
    assert meta["name"] == MODEL and meta["versions"] == ["1"]
    # int64 shapes are strings in protobuf's JSON mapping
    assert meta["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": ["-1"]}]
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": ["-1", str(DIM)]}]


def test_grpc_infer_equals_v3_embeddings(grpc_client: grpcclient.InferenceServerClient,
                                         openai_vectors: np.ndarray) -> None:
    text = grpcclient.InferInput("input", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(_texts())
    result = grpc_client.infer(MODEL, [text], outputs=[grpcclient.InferRequestedOutput("embedding")],
                               request_id="grpc-1", headers=grpc_auth())
    got = result.as_numpy("embedding")
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), DIM)
    np.testing.assert_allclose(got, openai_vectors, rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (MODEL, "1", "grpc-1")


def test_grpc_chunking_parameters_equal_v3_embeddings(server: Servers,
                                                      grpc_client: grpcclient.InferenceServerClient) -> None:
    """tritonclient's ``parameters`` reach the retrieval options: chunking as on /v3/embeddings."""
    long = " ".join(TEXTS * 40)  # longer than MiniLM's 256 tokens
    resp = httpx.post(f"{server.rest.base_url}/v3/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": MODEL, "input": [long], "input_type": "query",
                            "chunking": {"size": 128, "overlap": 16}}, timeout=60)
    assert resp.status_code == 200, resp.text
    text = grpcclient.InferInput("input", [1], "BYTES")
    text.set_data_from_numpy(np.array([long.encode()], dtype=np.object_))
    result = grpc_client.infer(MODEL, [text], headers=grpc_auth(),
                               parameters={"input_type": "query", "chunk_size": 128, "chunk_overlap": 16})
    np.testing.assert_allclose(result.as_numpy("embedding")[0], resp.json()["data"][0]["embedding"], atol=ATOL)


def test_grpc_errors(grpc_client: grpcclient.InferenceServerClient) -> None:
    text = grpcclient.InferInput("input", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"x"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer(MODEL, [text])
    assert info.value.status() == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer("nope", [text], headers=grpc_auth())
    assert info.value.status() == "StatusCode.NOT_FOUND"
    assert "The model 'nope' does not exist" in info.value.message()
    wrong = grpcclient.InferInput("text", [1], "BYTES")
    wrong.set_data_from_numpy(np.array([b"x"], dtype=np.object_))
    with pytest.raises(InferenceServerException) as info:
        grpc_client.infer(MODEL, [wrong], headers=grpc_auth())
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"


# --- HTTP ----------------------------------------------------------------------------------

@pytest.fixture
def http_client(server: Servers) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{server.rest.port}")
    yield client
    client.close()


def http_auth() -> dict[str, str]:
    """A fresh dict per call: tritonclient.http adds Inference-Header-Content-Length to it."""
    return {"Authorization": f"Bearer {KEY}"}


def test_http_health_and_metadata(http_client: httpclient.InferenceServerClient) -> None:
    assert http_client.is_server_live()
    assert http_client.is_server_ready()
    assert http_client.is_model_ready(MODEL)
    assert not http_client.is_model_ready("nope")
    assert http_client.get_server_metadata(headers=http_auth())["name"] == "ovembed"
    meta = http_client.get_model_metadata(MODEL, headers=http_auth())
    assert meta["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, DIM]}]


@pytest.mark.parametrize(("binary_in", "binary_out"), [(True, True), (False, False), (True, False), (False, True)])
def test_http_infer_equals_v3_embeddings(http_client: httpclient.InferenceServerClient,
                                         openai_vectors: np.ndarray, binary_in: bool, binary_out: bool) -> None:
    text = httpclient.InferInput("input", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(_texts(), binary_data=binary_in)
    output = httpclient.InferRequestedOutput("embedding", binary_data=binary_out)
    result = http_client.infer(MODEL, [text], outputs=[output], request_id="http-1", headers=http_auth())
    got = result.as_numpy("embedding")
    assert got.shape == (len(TEXTS), DIM)
    np.testing.assert_allclose(got.astype(np.float32), openai_vectors, rtol=0, atol=ATOL)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (MODEL, "1", "http-1")


def test_http_infer_default_outputs(http_client: httpclient.InferenceServerClient,
                                    openai_vectors: np.ndarray) -> None:
    text = httpclient.InferInput("input", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(_texts())
    result = http_client.infer(MODEL, [text], model_version="1", headers=http_auth())  # binary_data_output
    np.testing.assert_allclose(result.as_numpy("embedding"), openai_vectors, rtol=0, atol=ATOL)


def test_http_errors(http_client: httpclient.InferenceServerClient) -> None:
    text = httpclient.InferInput("input", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"x"], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="Missing API key"):
        http_client.infer(MODEL, [text])
    with pytest.raises(InferenceServerException, match="The model 'nope' does not exist"):
        http_client.infer("nope", [text], headers=http_auth())
    long = httpclient.InferInput("input", [1], "BYTES")
    long.set_data_from_numpy(np.array([b"word " * 600], dtype=np.object_))
    with pytest.raises(InferenceServerException, match=r"input\[0\] has \d+ tokens; the model takes at most 256: "):
        http_client.infer(MODEL, [long], headers=http_auth())
    cut = http_client.infer(MODEL, [long], headers=http_auth(), parameters={"truncate": True})
    assert cut.as_numpy("embedding").shape == (1, DIM)
