"""Deadlines and overload over REST: ``x-request-timeout`` and ``--request_timeout`` become the
request's DEADLINE; a 504 (deadline) or 429 (expected wait) answers in each API's own envelope."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from ovembed.errors import DeadlineExceeded, Overloaded
from ovembed.serving.api import DEADLINE, EmbedOptions, EmbedResult, Inputs
from tests.serving.fakes import FakeRegistry, FakeServable, make_app


class DeadlineRecorder(FakeServable):
    """Records the DEADLINE each embed call sees."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadlines: list[float | None] = []

    async def embed(self, inputs: Inputs, *, truncate: bool | None = None,
                    options: EmbedOptions | None = None) -> EmbedResult:
        self.deadlines.append(DEADLINE.get())
        return await super().embed(inputs, truncate=truncate, options=options)


@pytest.fixture
def servables() -> tuple[DeadlineRecorder, FakeServable]:
    return DeadlineRecorder("fake"), FakeServable("splade", task="sparse")


def client_for(servables: tuple[DeadlineRecorder, FakeServable], **overrides: Any) -> TestClient:
    return TestClient(make_app(FakeRegistry(*servables), **overrides))


@pytest.fixture
def client(servables: tuple[DeadlineRecorder, FakeServable]) -> Iterator[TestClient]:
    with client_for(servables) as test_client:
        yield test_client


# Each API family's route and body, and where its error message is.
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "openai": ("/v3/embeddings", {"model": "fake", "input": ["a b"]}),
    "cohere": ("/v2/embed", {"model": "fake", "texts": ["a b"], "input_type": "search_query"}),
    "ollama": ("/api/embed", {"model": "fake", "input": ["a b"]}),
    "kserve": ("/v2/models/fake/infer", {"inputs": [{"name": "input", "shape": [1], "datatype": "BYTES",
                                                     "data": ["a b"]}]}),
    "tei": ("/embed_sparse", {"model": "splade", "inputs": ["a b"]}),
}


def message(family: str, body: dict[str, Any]) -> str:
    error = body["error"]
    if family in ("openai", "cohere"):
        return str(error["message"])
    if family == "tei":
        assert "error_type" in body
    return str(error)


def test_the_header_sets_the_deadline(client: TestClient, servables: tuple[DeadlineRecorder, FakeServable]) -> None:
    before = time.monotonic()
    assert client.post("/v3/embeddings", json=FAMILIES["openai"][1],
                       headers={"x-request-timeout": "2.5"}).status_code == 200
    deadline = servables[0].deadlines[-1]
    assert deadline is not None and before + 2.5 <= deadline <= time.monotonic() + 2.5
    assert client.post("/v3/embeddings", json=FAMILIES["openai"][1]).status_code == 200
    assert servables[0].deadlines[-1] is None  # no header, no --request_timeout: no deadline


def test_the_server_default_applies_and_caps_the_header(servables: tuple[DeadlineRecorder, FakeServable]) -> None:
    with client_for(servables, request_timeout=3.0) as client:
        before = time.monotonic()
        client.post("/v3/embeddings", json=FAMILIES["openai"][1])
        client.post("/v3/embeddings", json=FAMILIES["openai"][1], headers={"x-request-timeout": "1"})
        client.post("/v3/embeddings", json=FAMILIES["openai"][1], headers={"x-request-timeout": "100"})
    after = time.monotonic()
    default, shorter, longer = servables[0].deadlines
    assert default is not None and before + 3 <= default <= after + 3
    assert shorter is not None and before + 1 <= shorter <= after + 1
    assert longer is not None and before + 3 <= longer <= after + 3  # the server's limit is a limit


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", ""])
def test_an_invalid_header_is_a_400_in_the_api_envelope(client: TestClient, family: str, value: str) -> None:
    path, body = FAMILIES[family]
    resp = client.post(path, json=body, headers={"x-request-timeout": value})
    assert resp.status_code == 400, resp.text
    assert "x-request-timeout must be a positive number of seconds" in message(family, resp.json())


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_deadline_exceeded_is_a_504_in_the_api_envelope(
        client: TestClient, servables: tuple[DeadlineRecorder, FakeServable], family: str) -> None:
    for servable in servables:
        servable.fail_with = DeadlineExceeded("Deadline exceeded: the request's time limit ran out")
    path, body = FAMILIES[family]
    resp = client.post(path, json=body, headers={"x-request-timeout": "1"})
    assert resp.status_code == 504, resp.text
    assert message(family, resp.json()) == "Deadline exceeded: the request's time limit ran out"
    if family == "openai":
        assert resp.json()["error"]["code"] == "deadline_exceeded"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_refusal_by_expected_wait_is_a_429_with_retry_after(
        client: TestClient, servables: tuple[DeadlineRecorder, FakeServable], family: str) -> None:
    for servable in servables:
        servable.fail_with = Overloaded("would wait about 90 s in its queue", retry_after=60)
    path, body = FAMILIES[family]
    resp = client.post(path, json=body)
    assert resp.status_code == 429 and resp.headers["retry-after"] == "60"
    assert message(family, resp.json()) == "would wait about 90 s in its queue"
