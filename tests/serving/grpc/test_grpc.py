"""KServe v2 gRPC (ovembed/serving/grpc/): a real grpc.aio server on 127.0.0.1 over the fake registry."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import pytest
from starlette.testclient import TestClient

from ovembed import __version__
from ovembed.config import ServeConfig
from ovembed.errors import ConfigError
from ovembed.serving.api import ModelState
from ovembed.serving.grpc import grpc_predict_v2_pb2 as pb
from ovembed.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from ovembed.serving.grpc import server as grpc_server
from ovembed.serving.http.server import check_config
from tests.serving.fakes import FakeRegistry, FakeServable, expected_vector, make_app, text_ids
from tests.support.live_server import free_port

KEY = "grpc-secret"
AUTH = (("authorization", f"Bearer {KEY}"),)
DIM = 384
TEXTS = ["hello world", "OpenVINO runs embedding models", "ünïcödé text 你好"]
T = TypeVar("T")
Stub = Any  # pb_grpc.GRPCInferenceServiceStub (generated, untyped)


def make_stub(channel: grpc.Channel | grpc.aio.Channel) -> Stub:
    return pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry(FakeServable("minilm", dimensions=DIM), FakeServable("org/long", max_length=64),
                        loading=["slow"], failed={"broken": "cannot read openvino_model.xml"})


@asynccontextmanager
async def serving(registry: FakeRegistry, **options: Any) -> AsyncIterator[Stub]:
    settings = {"api_key": None, "max_inputs": 2048, "max_message_bytes": 8 << 20, **options}
    server, port = await grpc_server.start(registry, host="127.0.0.1", port=0, **settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield make_stub(channel)
    finally:
        await grpc_server.stop(server, grace=1)


def run(registry: FakeRegistry, scenario: Callable[[Stub], Awaitable[T]], **options: Any) -> T:
    async def main() -> T:
        async with serving(registry, **options) as stub:
            return await scenario(stub)

    return asyncio.run(asyncio.wait_for(main(), 30))


def serialize(texts: Sequence[str | bytes]) -> bytes:
    """Triton's BYTES tensor layout, as tritonclient sends it."""
    parts = [t.encode() if isinstance(t, str) else t for t in texts]
    return b"".join(struct.pack("<I", len(p)) + p for p in parts)


def infer_request(texts: Sequence[str | bytes], *, model: str = "minilm", raw: bool = True,
                  name: str = "input", datatype: str = "BYTES", shape: Sequence[int] | None = None,
                  **fields: Any) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, **fields)
    tensor = request.inputs.add(name=name, datatype=datatype,
                                shape=list(shape) if shape is not None else [len(texts)])
    if raw:
        request.raw_input_contents.append(serialize(texts))
    else:
        tensor.contents.bytes_contents.extend(t.encode() if isinstance(t, str) else t for t in texts)
    return request


def expected(texts: Sequence[str], dimensions: int = DIM) -> np.ndarray:
    return np.stack([expected_vector(text_ids(t), dimensions, True) for t in texts])


def vectors(response: pb.ModelInferResponse) -> np.ndarray:
    (output,) = response.outputs
    assert (output.name, output.datatype) == ("embedding", "FP32")
    (raw,) = response.raw_output_contents
    return np.frombuffer(raw, dtype="<f4").reshape(list(output.shape))


async def rpc_error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


# --- health and metadata -------------------------------------------------------------------

def test_health(registry: FakeRegistry) -> None:
    async def scenario(stub: Stub) -> None:
        assert (await stub.ServerLive(pb.ServerLiveRequest())).live is True
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready is False  # 'slow' is still loading
        registry.set_state("slow", ModelState.AVAILABLE)
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready is False  # 'broken' failed (OVMS: all)
        registry.set_state("broken", ModelState.AVAILABLE)
        assert (await stub.ServerReady(pb.ServerReadyRequest())).ready is True
        registry.set_state("broken", ModelState.UNAVAILABLE, "failed")
        for name, version, ready in [("minilm", "", True), ("minilm", "1", True), ("org/long", "", True),
                                     ("broken", "", False)]:
            response = await stub.ModelReady(pb.ModelReadyRequest(name=name, version=version))
            assert response.ready is ready, name
        registry.set_state("slow", ModelState.LOADING)
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="slow"))).ready is False
        # Triton: an unknown model or version is not ready (OK, ready=false), not an error
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="nope"))).ready is False
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="minilm", version="2"))).ready is False

    run(registry, scenario)


def test_model_config(registry: FakeRegistry) -> None:
    async def scenario(stub: Stub) -> None:
        config = (await stub.ModelConfig(pb.ModelConfigRequest(name="minilm"), metadata=AUTH)).config
        assert (config.name, config.platform, config.backend, config.max_batch_size) == (
            "minilm", "OpenVINO", "openvino", 0)
        assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
            ("input", pb.TYPE_STRING, [-1])]
        dims = registry.get("minilm").info.dimensions
        assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [
            ("embedding", pb.TYPE_FP32, [-1, dims])]
        err = await rpc_error(stub.ModelConfig(pb.ModelConfigRequest(name="nope"), metadata=AUTH))
        assert (err.code(), err.details()) == (grpc.StatusCode.NOT_FOUND, "The model 'nope' does not exist")
        err = await rpc_error(stub.ModelConfig(pb.ModelConfigRequest(name="minilm")))
        assert err.code() is grpc.StatusCode.UNAUTHENTICATED

    run(registry, scenario, api_key=KEY)


def test_server_metadata(registry: FakeRegistry) -> None:
    async def scenario(stub: Stub) -> Any:
        return await stub.ServerMetadata(pb.ServerMetadataRequest())

    response = run(registry, scenario)
    assert (response.name, response.version, list(response.extensions)) == ("ovembed", __version__, [])


def _tensors(tensors: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in tensors]


@pytest.mark.parametrize("name", ["minilm", "org/long"])
def test_model_metadata_matches_rest(registry: FakeRegistry, name: str) -> None:
    async def scenario(stub: Stub) -> Any:
        return await stub.ModelMetadata(pb.ModelMetadataRequest(name=name, version="1"))

    response = run(registry, scenario)
    with TestClient(make_app(registry)) as client:
        rest = client.get(f"/v2/models/{name}").json()
    got = {"name": response.name, "versions": list(response.versions), "platform": response.platform,
           "inputs": _tensors(response.inputs), "outputs": _tensors(response.outputs)}
    assert got == rest
    dims = registry.servables[name].info.dimensions
    assert got["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1]}]
    assert got["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, dims]}]


def test_model_metadata_errors(registry: FakeRegistry) -> None:
    async def scenario(stub: Stub) -> list[tuple[grpc.StatusCode, str]]:
        out = []
        for name in ("nope", "slow", "broken"):
            err = await rpc_error(stub.ModelMetadata(pb.ModelMetadataRequest(name=name)))
            out.append((err.code(), err.details()))
        return out

    assert run(registry, scenario) == [
        (grpc.StatusCode.NOT_FOUND, "The model 'nope' does not exist"),
        (grpc.StatusCode.UNAVAILABLE, "The model 'slow' is still loading"),
        (grpc.StatusCode.UNAVAILABLE, "The model 'broken' is not available: cannot read openvino_model.xml"),
    ]


# --- inference -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [True, False], ids=["raw_input_contents", "bytes_contents"])
def test_infer(registry: FakeRegistry, raw: bool) -> None:
    async def scenario(stub: Stub) -> tuple[pb.ModelInferResponse, Any]:
        call = stub.ModelInfer(infer_request(TEXTS, raw=raw, id="req-1"), metadata=(("x-request-id", "rid-7"),))
        return await call, await call.trailing_metadata()

    response, trailing = run(registry, scenario)
    assert (response.model_name, response.model_version, response.id) == ("minilm", "1", "req-1")
    assert list(response.outputs[0].shape) == [len(TEXTS), DIM]
    np.testing.assert_array_equal(vectors(response), expected(TEXTS))
    assert registry.servables["minilm"].calls == [(TEXTS, None)]
    meta = dict(trailing)
    assert meta["x-request-id"] == "rid-7"
    assert meta["x-inference-time"] == "4" and meta["x-queue-time"] == "3"  # the fake's timings


def test_infer_shape_n_by_1_version_and_outputs(registry: FakeRegistry) -> None:
    request = infer_request(TEXTS[:2], shape=[2, 1], model_version="1")
    request.outputs.add(name="embedding")

    async def scenario(stub: Stub) -> Any:
        return await stub.ModelInfer(request)

    np.testing.assert_array_equal(vectors(run(registry, scenario)), expected(TEXTS[:2]))


def test_infer_truncate_parameter(registry: FakeRegistry) -> None:
    long = "one two three four five six seven eight nine"  # 11 tokens, max_length 8
    truncating = infer_request([long])
    truncating.parameters["truncate"].bool_param = True

    async def scenario(stub: Stub) -> tuple[pb.ModelInferResponse, grpc.aio.AioRpcError]:
        err = await rpc_error(stub.ModelInfer(infer_request([long])))
        return await stub.ModelInfer(truncating), err

    response, err = run(registry, scenario)
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == ("input[0] has 11 tokens; the model takes at most 8: "
                            "send truncate=true (or chunking) or shorten it")
    cut = [*text_ids(long)[:7], 102]
    np.testing.assert_array_equal(vectors(response)[0], expected_vector(cut, DIM, True))
    assert registry.servables["minilm"].calls[-1] == ([long], True)


BAD_REQUESTS: list[tuple[str, Callable[[], pb.ModelInferRequest], str]] = [
    ("wrong name", lambda: infer_request(["a"], name="text"),
     "Unknown input 'text': the model takes one input 'input' (BYTES, shape [-1])"),
    ("wrong type", lambda: infer_request(["a"], datatype="FP32"),
     "Input 'input' must have datatype BYTES, got 'FP32'"),
    ("shape mismatch", lambda: infer_request(["a", "b"], shape=[3]), "Input 'input' has shape [3] but 2 elements"),
    ("rank 2", lambda: infer_request(["a", "b"], shape=[1, 2]),
     "Input 'input' must have shape [N] (or [N, 1]), got [1, 2]"),
    ("empty", lambda: infer_request([]), "Input 'input' must not be empty"),
    ("empty text", lambda: infer_request(["a", ""]), "'input[1]' must not be an empty string"),
    ("not utf-8", lambda: infer_request([b"\xff\xfe"]), "'input[0]' is not valid UTF-8"),
    ("malformed raw", lambda: pb.ModelInferRequest(
        model_name="minilm", inputs=[pb.ModelInferRequest.InferInputTensor(name="input", datatype="BYTES", shape=[1])],
        raw_input_contents=[struct.pack("<I", 10) + b"abc"]), "Malformed BYTES tensor: element longer than the data"),
    ("two inputs", lambda: pb.ModelInferRequest(model_name="minilm", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="input"), pb.ModelInferRequest.InferInputTensor(name="x")]),
     "ModelInfer takes exactly one input 'input', got 2"),
    ("unknown output", lambda: infer_request(["a"], outputs=[
        pb.ModelInferRequest.InferRequestedOutputTensor(name="logits")]),
     "Unknown output 'logits': the model's only output is 'embedding'"),
    ("truncate not bool", lambda: infer_request(["a"], parameters={"truncate": pb.InferParameter(string_param="yes")}),
     "Parameter 'truncate' must be a bool_param"),
]


@pytest.mark.parametrize(("make", "message"), [(m, msg) for _, m, msg in BAD_REQUESTS],
                         ids=[case for case, _, _ in BAD_REQUESTS])
def test_bad_input_is_invalid_argument(registry: FakeRegistry, make: Callable[[], pb.ModelInferRequest],
                                       message: str) -> None:
    async def scenario(stub: Stub) -> grpc.aio.AioRpcError:
        return await rpc_error(stub.ModelInfer(make()))

    err = run(registry, scenario)
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    assert registry.servables["minilm"].calls == []  # rejected before the engine


def test_unknown_unready_and_wrong_version(registry: FakeRegistry) -> None:
    async def scenario(stub: Stub) -> list[tuple[grpc.StatusCode, str]]:
        out = []
        for request in (infer_request(["a"], model="nope"), infer_request(["a"], model="slow"),
                        infer_request(["a"], model_version="2")):
            err = await rpc_error(stub.ModelInfer(request))
            out.append((err.code(), err.details()))
        return out

    assert run(registry, scenario) == [
        (grpc.StatusCode.NOT_FOUND, "The model 'nope' does not exist"),
        (grpc.StatusCode.UNAVAILABLE, "The model 'slow' is still loading"),
        (grpc.StatusCode.NOT_FOUND, "The model 'minilm/versions/2' does not exist"),
    ]


def test_limits_overload_and_internal_errors(registry: FakeRegistry, caplog: pytest.LogCaptureFixture) -> None:
    fake = registry.servables["minilm"]

    async def scenario(stub: Stub) -> list[grpc.aio.AioRpcError]:
        too_many = await rpc_error(stub.ModelInfer(infer_request(["a", "b", "c"])))
        fake.overloaded = True
        overloaded = await rpc_error(stub.ModelInfer(infer_request(["a"])))
        fake.overloaded, fake.fail_with = False, RuntimeError("secret engine detail")
        internal = await rpc_error(stub.ModelInfer(infer_request(["a"]), metadata=(("x-request-id", "rid-9"),)))
        return [too_many, overloaded, internal]

    too_many, overloaded, internal = run(registry, scenario, max_inputs=2)
    assert too_many.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert too_many.details() == "Too many inputs: 3 in one request, the limit is 2"
    assert overloaded.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert internal.code() is grpc.StatusCode.INTERNAL
    assert internal.details() == "Internal server error (request id rid-9)"
    assert dict(internal.trailing_metadata() or ())["x-request-id"] == "rid-9"
    assert "secret engine detail" in caplog.text  # logged with its traceback, never sent


def test_message_size_limit(registry: FakeRegistry) -> None:
    async def scenario(stub: Stub) -> grpc.aio.AioRpcError:
        return await rpc_error(stub.ModelInfer(infer_request(["word " * 400])))

    assert run(registry, scenario, max_message_bytes=1000).code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_client_cancel_drops_the_work(registry: FakeRegistry) -> None:
    fake = registry.servables["minilm"]

    async def scenario(stub: Stub) -> None:
        fake.block = asyncio.Event()
        call = stub.ModelInfer(infer_request(["a"]))
        await asyncio.wait_for(fake.started.wait(), 5)
        call.cancel()
        for _ in range(100):
            if fake.cancelled:
                return
            await asyncio.sleep(0.02)

    run(registry, scenario)
    assert fake.cancelled


# --- auth ----------------------------------------------------------------------------------

def test_api_key(registry: FakeRegistry) -> None:
    async def scenario(stub: Stub) -> None:
        protected = [(stub.ModelInfer, infer_request(["a"])),
                     (stub.ModelMetadata, pb.ModelMetadataRequest(name="minilm")),
                     (stub.ServerMetadata, pb.ServerMetadataRequest())]
        for method, request in protected:
            def call(metadata: Sequence[tuple[str, str]], method: Any = method, request: Any = request) -> Any:
                return method(request, metadata=metadata)

            err = await rpc_error(call(()))
            assert err.code() is grpc.StatusCode.UNAUTHENTICATED
            assert err.details() == "Missing API key: send the metadata 'authorization: Bearer <key>'"
            for wrong in ("Bearer nope", f"Basic {KEY}", KEY):
                err = await rpc_error(call((("authorization", wrong),)))
                assert (err.code(), err.details()) == (grpc.StatusCode.UNAUTHENTICATED, "Invalid API key")
            await call(AUTH)
        # probes stay open, as /v2/health/* and /v2/models/<name>/ready do on REST
        assert (await stub.ServerLive(pb.ServerLiveRequest())).live
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="minilm"))).ready
        await stub.ServerReady(pb.ServerReadyRequest())

    run(registry, scenario, api_key=KEY)
    assert registry.servables["minilm"].calls == [(["a"], None)]  # only the authorised call ran


# --- serving alongside REST ----------------------------------------------------------------

def test_app_lifespan_serves_grpc_on_port(registry: FakeRegistry) -> None:
    port = free_port()
    app = make_app(registry, port=port, environ={"API_KEY": KEY})
    with TestClient(app, base_url="http://localhost") as client:
        assert app.state.grpc_port == port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = make_stub(channel)
            response = stub.ModelInfer(infer_request(TEXTS), metadata=AUTH, timeout=10)
        rest = client.post("/v3/embeddings", json={"model": "minilm", "input": TEXTS},
                           headers={"Authorization": f"Bearer {KEY}"}).json()
        np.testing.assert_array_equal(vectors(response), np.array([d["embedding"] for d in rest["data"]], "f4"))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # stopped with the app
        stub = make_stub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ServerLive(pb.ServerLiveRequest(), timeout=2)
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    assert registry.stopped


def test_grpc_off_by_default(registry: FakeRegistry) -> None:
    app = make_app(registry)
    with TestClient(app, base_url="http://localhost"):
        assert app.state.grpc_port is None


def test_port_in_use_fails_to_start(registry: FakeRegistry) -> None:
    async def main() -> None:
        server, port = await grpc_server.start(registry, host="127.0.0.1", port=0, api_key=None,
                                               max_inputs=8, max_message_bytes=1 << 20)
        try:
            with pytest.raises(OSError, match=rf"KServe gRPC cannot listen on 127.0.0.1:{port}"):
                await grpc_server.start(registry, host="127.0.0.1", port=port, api_key=None,
                                        max_inputs=8, max_message_bytes=1 << 20)
        finally:
            await grpc_server.stop(server, grace=0)

    asyncio.run(main())


@pytest.mark.parametrize(("options", "message"), [
    ({"port": 8000, "rest_port": 8000}, r"--port \(gRPC\) and --rest_port must differ, both are 8000"),
    ({"port": 70000}, r"--port \(gRPC\) must be between 1 and 65535, or 0 for off"),
    ({"port": -1}, r"--port \(gRPC\) must be between 1 and 65535"),
])
def test_check_config_ports(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_config(ServeConfig(config_path=Path("config.json"), **options))


def test_address_brackets_ipv6() -> None:
    assert grpc_server.address("::1", 9000) == "[::1]:9000"
    assert grpc_server.address("[::1]", 9000) == "[::1]:9000"
    assert grpc_server.address("127.0.0.1", 9000) == "127.0.0.1:9000"
