"""Prompts and chunking as KServe gRPC request parameters (fake engine): the same values as REST's
parameters and the OpenAI route's fields, and their errors as INVALID_ARGUMENT / RESOURCE_EXHAUSTED."""

from __future__ import annotations

import grpc
import numpy as np

from ovembed.prompts import PromptSet
from ovembed.serving.api import ChunkingOptions
from ovembed.serving.tasks.passages import chunk_document, weighted_mean
from tests.serving.fakes import CLS, SEP, FakeRegistry, FakeServable, expected_vector, text_ids, word_offsets
from tests.serving.grpc.test_grpc import Stub, infer_request, rpc_error, run, vectors

DIM = 8
LONG = " ".join(f"w{i}" for i in range(10))


def _registry() -> FakeRegistry:
    return FakeRegistry(FakeServable("e5", dimensions=DIM, max_length=6,
                                     prompts=PromptSet({"query": "query: "}, None)))


def test_prompt_and_chunking_parameters() -> None:
    registry = _registry()
    prompted = infer_request(["hello"], model="e5")
    prompted.parameters["prompt_name"].string_param = "query"
    chunked = infer_request([LONG], model="e5")
    chunked.parameters["chunk_size"].int64_param = 3
    chunked.parameters["chunk_overlap"].int64_param = 1
    chunked.parameters["input_type"].string_param = "query"

    async def scenario(stub: Stub) -> tuple[np.ndarray, np.ndarray]:
        return vectors(await stub.ModelInfer(prompted)), vectors(await stub.ModelInfer(chunked))

    first, second = run(registry, scenario)
    np.testing.assert_allclose(first[0], expected_vector(text_ids("query: hello"), DIM, True), rtol=1e-6)
    ids, offsets = word_offsets("query: " + LONG)
    chunks = chunk_document(ids, offsets, prompt_chars=len("query: "), prefix=[CLS], suffix=[SEP], max_length=6,
                            options=ChunkingOptions(size=3, overlap=1))
    mean = weighted_mean(np.stack([expected_vector(c.ids, DIM, True) for c in chunks]),
                         [len(c.ids) for c in chunks], normalize=True)
    assert len(chunks) == 5 and second.shape == (1, DIM)
    np.testing.assert_allclose(second[0], mean, rtol=1e-5)


def test_parameter_errors() -> None:
    registry = _registry()
    limited = infer_request([LONG], model="e5")
    limited.parameters["chunk_size"].int64_param = 4
    limited.parameters["max_chunks"].int64_param = 2
    wrong_type = infer_request([LONG], model="e5")
    wrong_type.parameters["chunking"].string_param = "on"
    unknown_prompt = infer_request(["hi"], model="e5")
    unknown_prompt.parameters["prompt_name"].string_param = "nope"

    async def scenario(stub: Stub) -> list[grpc.aio.AioRpcError]:
        return [await rpc_error(stub.ModelInfer(r)) for r in (limited, wrong_type, unknown_prompt)]

    limit, typed, prompt = run(registry, scenario)
    assert limit.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "'chunking.max_chunks' (2)" in limit.details()
    assert typed.code() is grpc.StatusCode.INVALID_ARGUMENT and "must be a bool" in typed.details()
    assert prompt.code() is grpc.StatusCode.INVALID_ARGUMENT and "nope" in prompt.details()
