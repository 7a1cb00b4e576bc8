"""Deadlines and overload over gRPC: the call's deadline (and ``x-request-timeout`` metadata,
``--request_timeout``) become the request's DEADLINE; DeadlineExceeded is DEADLINE_EXCEEDED, a
refusal by expected wait RESOURCE_EXHAUSTED."""

from __future__ import annotations

import time

import grpc
import pytest

from ovembed.errors import DeadlineExceeded, Overloaded
from tests.serving.fakes import FakeRegistry
from tests.serving.grpc.test_grpc import Stub, infer_request, rpc_error, run
from tests.serving.http.test_deadlines import DeadlineRecorder


@pytest.fixture
def recorder() -> DeadlineRecorder:
    return DeadlineRecorder("minilm")


def test_the_call_deadline_metadata_and_server_default_set_the_deadline(recorder: DeadlineRecorder) -> None:
    async def scenario(stub: Stub) -> float:
        before = time.monotonic()
        await stub.ModelInfer(infer_request(["a"]), timeout=20)
        await stub.ModelInfer(infer_request(["a"]), metadata=(("x-request-timeout", "2"),))
        await stub.ModelInfer(infer_request(["a"]))
        return before

    before = run(FakeRegistry(recorder), scenario, request_timeout=5.0)
    after = time.monotonic()
    call, header, default = recorder.deadlines
    assert call is not None and before + 4 <= call <= after + 5  # the shorter: the server's 5 s
    assert header is not None and before + 2 <= header <= after + 2
    assert default is not None and before + 5 <= default <= after + 5


def test_a_short_call_deadline_wins(recorder: DeadlineRecorder) -> None:
    async def scenario(stub: Stub) -> float:
        before = time.monotonic()
        await stub.ModelInfer(infer_request(["a"]), timeout=3)
        return before

    before = run(FakeRegistry(recorder), scenario)
    deadline = recorder.deadlines[0]
    # grpc-timeout travels rounded to its unit: a few milliseconds either way
    assert deadline is not None and before + 2.5 < deadline < time.monotonic() + 3.5


def test_deadline_exceeded_overload_and_a_bad_header_have_their_status(recorder: DeadlineRecorder) -> None:
    async def scenario(stub: Stub) -> list[grpc.aio.AioRpcError]:
        bad = await rpc_error(stub.ModelInfer(infer_request(["a"]), metadata=(("x-request-timeout", "soon"),)))
        recorder.fail_with = DeadlineExceeded("Deadline exceeded: ran out")
        late = await rpc_error(stub.ModelInfer(infer_request(["a"])))
        recorder.fail_with = Overloaded("would wait about 90 s", retry_after=60)
        refused = await rpc_error(stub.ModelInfer(infer_request(["a"])))
        return [bad, late, refused]

    bad, late, refused = run(FakeRegistry(recorder), scenario)
    assert bad.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert bad.details() == "x-request-timeout must be a positive number of seconds, got 'soon'"
    assert late.code() is grpc.StatusCode.DEADLINE_EXCEEDED and late.details() == "Deadline exceeded: ran out"
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and refused.details() == "would wait about 90 s"
    assert dict(refused.trailing_metadata() or ())["retry-after"] == "60"
