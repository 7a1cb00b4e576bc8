"""A rejected request leaves nothing in reference cycles (what tests/reliability/test_memory.py
measures as RSS, found here exactly and fast): after it, a gc pass with DEBUG_SAVEALL finds no
exception, no frame of ovembed's code, no request object.

The cycles these tests were written against: the error re-raised by ``task.result()`` in
RequestContext.guard held guard's frame, which held the task, which held the error; the HTTP
disconnect closure held the Request (scope -> context -> closure -> request); gRPC's
``context.abort()`` AbortError sat in a cycle with grpc's RPC state, its traceback holding the
request message and the tokenized batch.
"""

from __future__ import annotations

import asyncio
import gc
import struct
import types
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest

from ovembed.serving.grpc import grpc_predict_v2_pb2 as pb
from ovembed.serving.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from ovembed.serving.grpc import server as grpc_server
from tests.serving.fakes import FakeRegistry, FakeServable, make_app

pytestmark = pytest.mark.reliability

_TOO_LONG = "many words in this text " * 10  # the fake model's maximum length is 8


def _leftovers() -> list[str]:
    found = []
    for obj in gc.garbage:
        # the server's errors (the client's own AioRpcError objects are the test's business)
        if isinstance(obj, BaseException) and (type(obj).__module__.startswith("ovembed")
                                               or type(obj).__name__ == "AbortError"):
            found.append(f"exception {type(obj).__name__}: {obj}")
        elif isinstance(obj, types.FrameType) and "ovembed" in obj.f_code.co_filename:
            found.append(f"frame {obj.f_code.co_name} ({obj.f_code.co_filename})")
        elif type(obj).__name__ in ("Request", "ModelInferRequest") and type(obj).__module__.startswith(
                ("starlette", "ovembed")):
            found.append(f"{type(obj).__module__}.{type(obj).__name__}")
    return found


@pytest.fixture
def saved_garbage() -> Iterator[Callable[[], list[str]]]:
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)

    def collect() -> list[str]:
        gc.collect()
        return _leftovers()

    try:
        yield collect
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def _run(scenario: Callable[[], Awaitable[Any]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_rejected_http_request_leaves_no_cycle(saved_garbage: Callable[[], list[str]]) -> None:
    app = make_app(FakeRegistry(FakeServable("fake", max_length=8)))

    async def scenario() -> None:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
            first = await client.post("/v3/embeddings", json={"model": "fake", "input": [_TOO_LONG]})
            assert first.status_code == 400 and first.json()["error"]["code"] == "input_too_long"
            gc.collect()
            gc.garbage.clear()  # what the first request and the app's start-up left
            for path in ("/v3/embeddings", "/v1/embeddings"):
                response = await client.post(path, json={"model": "fake", "input": [_TOO_LONG] * 4})
                assert response.status_code == 400, response.text
            tensor = {"name": "input", "datatype": "BYTES", "shape": [4], "data": [_TOO_LONG] * 4}
            response = await client.post("/v2/models/fake/infer", json={"inputs": [tensor]})
            assert response.status_code == 400, response.text

    _run(scenario)
    assert saved_garbage() == []


def test_a_rejected_grpc_request_leaves_no_cycle(saved_garbage: Callable[[], list[str]]) -> None:
    registry = FakeRegistry(FakeServable("fake", max_length=8))
    text = _TOO_LONG.encode()

    async def scenario() -> None:
        server, port = await grpc_server.start(registry, host="127.0.0.1", port=0, api_key=None, max_inputs=16,
                                               max_message_bytes=1 << 20)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
                request = pb.ModelInferRequest(model_name="fake")
                request.inputs.add(name="input", datatype="BYTES", shape=[4])
                request.raw_input_contents.append((struct.pack("<I", len(text)) + text) * 4)
                for attempt in range(2):
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await stub.ModelInfer(request, metadata=(("x-request-id", "cycle-1"),))
                    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
                    assert "the model takes at most 8:" in (info.value.details() or "")
                    assert ("x-request-id", "cycle-1") in tuple(info.value.trailing_metadata() or ())
                    if attempt == 0:
                        gc.collect()
                        gc.garbage.clear()
                    await asyncio.sleep(0.1)  # the server finishes the RPC
        finally:
            await grpc_server.stop(server, grace=1)

    _run(scenario)
    assert saved_garbage() == []
